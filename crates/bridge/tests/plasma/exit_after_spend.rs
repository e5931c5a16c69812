//! Exit after spend: an account exits its balance at a checkpoint, then spends on TCP before
//! TCP has seen the exit (so before the lock). A later checkpoint shows its spends counter
//! higher: a watcher's challenge cancels the exit and takes the bond; the exiter gets nothing.

use crate::world::*;
use tcp_state::Action;

#[test]
fn an_exit_after_a_spend_is_cancelled_by_a_later_checkpoint() {
    let mut w = World::new();
    let (bob, carol, watcher) = (user(1), user(2), l1_address(3));
    w.deposit(&bob, &bob.address(), ETH);
    w.process_inbox();
    let before = w.checkpoint();
    // Bob starts an exit of his 1 ETH at `before`…
    assert!(w.start_account_exit(&bob, before).is_success());
    // …and spends it on TCP in a block that does not yet have the exit.
    w.tcp_send(&bob, Action::BridgeTransfer { to: carol.address(), amount: ETH }).unwrap();
    let after = w.checkpoint();
    // A checkpoint where bob did not spend proves nothing.
    let same = w.challenge(watcher, 0, before, &bob.address());
    assert_eq!(reverted(&same), Some("ChallengeNotLater"));
    let challenge = w.challenge(watcher, 0, after, &bob.address());
    assert!(challenge.is_success(), "{:?}", reverted(&challenge));
    w.process_inbox();
    assert!(!w.bridged(&bob.address()).locked, "a cancelled exit unlocks");

    w.l1.advance_time(params().challenge_period);
    w.finalize(10);
    assert_eq!(w.pull(l1(&bob)), 0, "the exiter gets nothing: not the amount, not the bond");
    assert_eq!(w.pull(watcher), World::reward(), "the challenger takes half the bond; the rest is burned");
    // Carol's ETH is still all in the contract, beside the burned half of the bond.
    assert_eq!(w.contract_balance(), ETH + params().exit_bond - World::reward());
    assert_eq!(w.bridged(&carol.address()).balance, ETH);
}

#[test]
fn a_later_checkpoint_without_a_spend_does_not_cancel_an_exit() {
    let mut w = World::new();
    let (bob, alice) = (user(1), user(0));
    w.deposit(&bob, &bob.address(), ETH);
    w.process_inbox();
    let first = w.checkpoint();
    assert!(w.start_account_exit(&bob, first).is_success());
    // Bob only receives meanwhile: his spends counter stays.
    w.deposit(&alice, &alice.address(), ETH);
    w.process_inbox();
    w.tcp_send(&alice, Action::BridgeTransfer { to: bob.address(), amount: 5_000 }).unwrap();
    let later = w.checkpoint();
    assert_eq!(reverted(&w.challenge(l1_address(3), 0, later, &bob.address())), Some("DidNotSpend"));
    w.l1.advance_time(params().challenge_period);
    w.finalize(10);
    assert_eq!(w.pull(l1(&bob)), ETH + params().exit_bond);
    w.process_inbox();
    // TCP took the exit's amount; what bob received after the checkpoint stays his.
    assert_eq!(w.bridged(&bob.address()).balance, 5_000);
}
