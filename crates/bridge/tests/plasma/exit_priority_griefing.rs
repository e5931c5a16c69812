//! Exit-priority griefing: exits settle first in, first out, so nobody jumps the queue (not even
//! with an exit from an older checkpoint started later); a challenged exit in the queue blocks
//! nothing; a flood of small exits costs a bond each and is settled in bounded batches.

use crate::world::*;
use tcp_state::Action;

#[test]
fn exits_settle_in_order_and_a_flood_is_settled_in_bounded_batches() {
    let mut w = World::new();
    let (alice, bob, carol) = (user(0), user(1), user(2));
    w.deposit(&alice, &alice.address(), 2 * ETH);
    w.deposit(&bob, &bob.address(), ETH);
    w.process_inbox();
    let old = w.checkpoint();
    w.tcp_send(&alice, Action::Withdraw { recipient: l1(&alice), amount: ETH }).unwrap();
    // Bob floods: 20 small withdrawals to himself.
    for _ in 0..20 {
        w.tcp_send(&bob, Action::Withdraw { recipient: l1(&bob), amount: 1_000_000 }).unwrap();
    }
    w.tcp_send(&carol, Action::Withdraw { recipient: l1(&carol), amount: 0 }).unwrap_err();
    let recent = w.checkpoint();
    assert!(w.start_withdrawal_exit(l1(&alice), recent, 0).is_success()); // exit 0
    let mut gas = Vec::new();
    for id in 1..=20 {
        let outcome = w.start_withdrawal_exit(l1(&bob), recent, id);
        assert!(outcome.is_success());
        gas.push(outcome.gas());
    }
    // Bob's exit from the older checkpoint, started last, is settled last.
    let half = params().challenge_period / 2;
    w.l1.advance_time(half);
    assert!(w.start_account_exit(&bob, old).is_success()); // exit 21
    w.l1.advance_time(half);
    // A batch of 5 settles alice's and 4 of bob's, in order.
    assert!(w.finalize(5).is_success());
    assert_eq!(w.withdrawable(l1(&alice)), ETH + params().exit_bond);
    assert_eq!(w.withdrawable(l1(&bob)), 4 * (1_000_000 + params().exit_bond));
    // The account exit (started half a period later) is not due yet; the rest are.
    let rest = w.finalize(100);
    assert!(rest.is_success());
    assert_eq!(w.withdrawable(l1(&bob)), 20 * (1_000_000 + params().exit_bond));
    w.l1.advance_time(half);
    w.finalize(100);
    assert_eq!(w.withdrawable(l1(&bob)), 20 * (1_000_000 + params().exit_bond) + ETH + params().exit_bond);
    println!("startWithdrawalExit gas stays flat over 20 exits: {} … {}", gas[0], gas[19]);
    assert!(gas[19] <= gas[1] + 2_000, "an exit's cost must not grow with the queue");
}

#[test]
fn a_challenged_exit_in_the_queue_blocks_nothing() {
    let mut w = World::new();
    let (alice, bob, carol) = (user(0), user(1), user(2));
    w.deposit(&alice, &alice.address(), ETH);
    w.deposit(&bob, &bob.address(), ETH);
    w.process_inbox();
    let first = w.checkpoint();
    assert!(w.start_account_exit(&bob, first).is_success()); // exit 0, to be challenged
    w.tcp_send(&bob, Action::BridgeTransfer { to: carol.address(), amount: 1 }).unwrap();
    w.tcp_send(&alice, Action::Withdraw { recipient: l1(&alice), amount: ETH }).unwrap();
    let second = w.checkpoint();
    assert!(w.start_withdrawal_exit(l1(&alice), second, 0).is_success()); // exit 1
    assert!(w.challenge(l1_address(3), 0, second, &bob.address()).is_success());
    w.l1.advance_time(params().challenge_period);
    w.finalize(1);
    assert_eq!(w.withdrawable(l1(&alice)), ETH + params().exit_bond, "the challenged exit was skipped, not counted");
}
