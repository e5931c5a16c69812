//! An equivocation proven after exits were paid cannot roll the bridge back below a checkpoint
//! an exit was paid from (that would pay the same ETH again, by reclaim or by an exit from an
//! older state); and no deposit any accepted checkpoint credited is ever reclaimed.

use crate::world::*;
use tcp_bridge::plasma;
use tcp_state::Action;

#[test]
fn an_equivocation_below_a_paid_checkpoint_does_not_reopen_what_was_paid() {
    let mut w = World::new();
    let (alice, mallory) = (user(0), user(2));
    w.deposit(&alice, &alice.address(), ETH); // inbox 0
    w.process_inbox();
    let low = w.checkpoint();
    w.deposit(&mallory, &mallory.address(), 10 * ETH); // inbox 1
    w.process_inbox();
    w.tcp_send(&mallory, Action::Withdraw { recipient: l1(&mallory), amount: 10 * ETH }).unwrap();
    let high = w.checkpoint();
    assert!(w.start_withdrawal_exit(l1(&mallory), high, 0).is_success());
    w.l1.advance_time(params().challenge_period);
    w.finalize(10);
    assert_eq!(w.pull(l1(&mallory)), 10 * ETH + params().exit_bond);
    // Two signed headers of a height between the two checkpoints.
    let between = low + 1;
    let (a, ra, sa) = w.group.header(&w.chain, between, [1; 32], 0);
    let (b, rb, sb) = w.group.header(&w.chain, between, [2; 32], 1);
    assert!(w.send(w.relayer, 0, plasma::prove_equivocation((&a, ra, &sa), (&b, rb, &sb))).is_success());
    assert!(w.frozen());
    assert_eq!(w.view_u256(plasma::IPlasmaRoot::equivocationHeightCall {}) as u64, high + 1, "the cutoff stays above the paid checkpoint");
    // Mallory's deposit was credited in an accepted checkpoint: not reclaimable.
    assert_eq!(reverted(&w.send(l1(&mallory), 0, plasma::reclaim_deposit(1))), Some("NotReclaimable"));
    // Alice exits from the last checkpoint as usual.
    assert!(w.start_account_exit(&alice, high).is_success());
    w.l1.advance_time(params().challenge_period);
    w.finalize(10);
    assert_eq!(w.pull(l1(&alice)), ETH + params().exit_bond);
    assert_eq!(w.contract_balance(), 0, "paid once each, nothing more");
}

#[test]
fn an_equivocation_below_every_checkpoint_reclaims_only_what_no_checkpoint_credited() {
    let mut w = World::new();
    let (alice, bob) = (user(0), user(1));
    w.deposit(&alice, &alice.address(), ETH); // inbox 0, credited below
    w.process_inbox();
    let first = w.checkpoint();
    w.deposit(&bob, &bob.address(), ETH); // inbox 1, never credited
    let (a, ra, sa) = w.group.header(&w.chain, first, [1; 32], 0);
    let (b, rb, sb) = w.group.header(&w.chain, first, [2; 32], 1);
    assert!(w.send(w.relayer, 0, plasma::prove_equivocation((&a, ra, &sa), (&b, rb, &sb))).is_success());
    assert_eq!(reverted(&w.start_account_exit(&alice, first)), Some("CheckpointNotUsable"));
    assert_eq!(reverted(&w.send(l1(&alice), 0, plasma::reclaim_deposit(0))), Some("NotReclaimable"));
    assert!(w.send(l1(&bob), 0, plasma::reclaim_deposit(1)).is_success());
    assert_eq!(w.pull(l1(&bob)), ETH);
}
