//! Censoring the inbox: a chain that keeps checkpointing but never processes the root chain's
//! inbox (deposits never credited, exits never locked) gets no checkpoint once an entry has
//! waited a challenge period, so the bridge freezes and the escape hatch opens: the uncredited
//! deposit comes back.

use crate::world::*;
use tcp_bridge::plasma;

#[test]
fn a_chain_that_leaves_the_inbox_unprocessed_gets_no_checkpoint_and_the_bridge_freezes() {
    let mut w = World::new();
    let alice = user(0);
    assert!(w.deposit(&alice, &alice.address(), ETH).is_success());
    // TCP skips the inbox but checkpoints: taken while the entry is young.
    w.checkpoint();
    w.l1.advance_time(params().challenge_period);
    let relay = w.make_checkpoint();
    assert_eq!(reverted(&w.send(w.relayer, 0, relay.calldata())), Some("InboxOverdue"));
    // Processing it makes checkpoints good again…
    let mut honest = World::new();
    honest.deposit(&alice, &alice.address(), ETH);
    honest.l1.advance_time(params().challenge_period);
    honest.process_inbox();
    honest.checkpoint();
    // …but the censoring chain's bridge freezes, and the deposit no checkpoint credited returns.
    w.l1.advance_time(params().freeze_period);
    assert!(w.frozen());
    assert!(w.send(l1(&alice), 0, plasma::reclaim_deposit(0)).is_success());
    assert_eq!(w.pull(l1(&alice)), ETH);
    assert_eq!(w.contract_balance(), 0);
}
