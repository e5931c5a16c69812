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

#[test]
fn a_challenge_is_taken_until_the_second_before_the_exit_is_due_and_not_after() {
    let mut w = World::new();
    let (bob, carol, watcher) = (user(1), user(2), l1_address(3));
    w.deposit(&bob, &bob.address(), ETH);
    w.process_inbox();
    let before = w.checkpoint();
    assert!(w.start_account_exit(&bob, before).is_success());
    w.tcp_send(&bob, Action::BridgeTransfer { to: carol.address(), amount: 1 }).unwrap();
    let after = w.checkpoint();
    let due = w.exitable_at(0);
    // The commitment a block before, the reveal at the last second.
    let (account, siblings) = w.account_proof(after, &bob.address());
    w.next_block_at(due - 2 * tcp_bridge::evm::BLOCK_TIME_SECS);
    assert!(w.send(watcher, 0, plasma::commit_challenge(plasma::challenge_commitment(0, watcher, after, &account, [3; 32]))).is_success());
    w.next_block_at(due - 1);
    assert!(w.send(watcher, 0, plasma::challenge_account_exit(0, [3; 32], after, &account, &siblings)).is_success());
    // Another exit, challenged exactly when it is due: too late.
    let mut late = World::new();
    late.deposit(&bob, &bob.address(), ETH);
    late.process_inbox();
    let before = late.checkpoint();
    assert!(late.start_account_exit(&bob, before).is_success());
    late.tcp_send(&bob, Action::BridgeTransfer { to: carol.address(), amount: 1 }).unwrap();
    let after = late.checkpoint();
    let due = late.exitable_at(0);
    let (account, siblings) = late.account_proof(after, &bob.address());
    assert!(late.send(watcher, 0, plasma::commit_challenge(plasma::challenge_commitment(0, watcher, after, &account, [3; 32]))).is_success());
    late.next_block_at(due);
    assert_eq!(reverted(&late.send(watcher, 0, plasma::challenge_account_exit(0, [3; 32], after, &account, &siblings))), Some("ExitNotChallengeable"));
}
