//! Challenges must be strictly later, for the exiting account, committed first, within the
//! period, and of an account exit.

use crate::world::*;
use tcp_bridge::plasma;
use tcp_state::Action;

#[test]
fn a_challenge_that_is_not_strictly_later_or_not_for_that_account_is_refused() {
    let mut w = World::new();
    let (alice, bob, carol, watcher) = (user(0), user(1), user(2), l1_address(3));
    w.deposit(&alice, &alice.address(), ETH);
    w.deposit(&bob, &bob.address(), ETH);
    w.process_inbox();
    w.tcp_send(&bob, Action::BridgeTransfer { to: carol.address(), amount: 1 }).unwrap();
    let early = w.checkpoint();
    // Bob spends again; alice does not.
    w.tcp_send(&bob, Action::BridgeTransfer { to: carol.address(), amount: 1 }).unwrap();
    let middle = w.checkpoint();
    w.tcp_send(&alice, Action::Withdraw { recipient: l1(&alice), amount: 1_000 }).unwrap();
    w.tcp_send(&bob, Action::BridgeTransfer { to: carol.address(), amount: 1 }).unwrap();
    let late = w.checkpoint();
    assert!(w.start_account_exit(&alice, middle).is_success()); // exit 0
    // The same checkpoint, an earlier one: not later.
    assert_eq!(reverted(&w.challenge(watcher, 0, middle, &alice.address())), Some("ChallengeNotLater"));
    assert_eq!(reverted(&w.challenge(watcher, 0, early, &alice.address())), Some("ChallengeNotLater"));
    // Bob's leaf, which did spend, against alice's exit: not that account's.
    assert_eq!(reverted(&w.challenge(watcher, 0, late, &bob.address())), Some("ProofDoesNotVerify"));
    // Revealed without a commitment.
    let (account, siblings) = w.account_proof(late, &alice.address());
    let uncommitted = w.send(watcher, 0, plasma::challenge_account_exit(0, [9; 32], late, &account, &siblings));
    assert_eq!(reverted(&uncommitted), Some("ChallengeNotCommitted"));
    // A withdrawal exit is not challengeable (the record was burned on TCP).
    let record_exit = w.start_withdrawal_exit(l1(&alice), late, 0);
    assert!(record_exit.is_success());
    assert_eq!(reverted(&w.challenge(watcher, 1, late, &alice.address())), Some("ExitNotChallengeable"));
    assert_eq!(reverted(&w.challenge(watcher, 7, late, &alice.address())), Some("NoSuchExit"));
    // After the period it is too late: the exit is final.
    w.l1.advance_time(params().challenge_period);
    assert_eq!(reverted(&w.challenge(watcher, 0, late, &alice.address())), Some("ExitNotChallengeable"));
}
