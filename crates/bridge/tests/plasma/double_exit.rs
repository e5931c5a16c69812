//! Double exits: one withdrawal record twice, one account twice at once, and one account again
//! from a checkpoint that predates its paid exit.

use crate::world::*;
use tcp_state::Action;

#[test]
fn a_withdrawal_record_exits_once() {
    let mut w = World::new();
    let alice = user(0);
    w.deposit(&alice, &alice.address(), ETH);
    w.process_inbox();
    w.tcp_send(&alice, Action::Withdraw { recipient: l1(&alice), amount: ETH }).unwrap();
    let first = w.checkpoint();
    let second = w.checkpoint();
    assert!(w.start_withdrawal_exit(l1(&alice), first, 0).is_success());
    // Again, from the same or a later checkpoint (the record is in every later state).
    assert_eq!(reverted(&w.start_withdrawal_exit(l1(&alice), first, 0)), Some("AlreadyExiting"));
    assert_eq!(reverted(&w.start_withdrawal_exit(l1(&alice), second, 0)), Some("AlreadyExiting"));
    w.l1.advance_time(params().challenge_period);
    w.finalize(10);
    assert_eq!(reverted(&w.start_withdrawal_exit(l1(&alice), second, 0)), Some("AlreadyExiting"));
    assert_eq!(w.pull(l1(&alice)), ETH + params().exit_bond);
    assert_eq!(w.contract_balance(), 0);
}

#[test]
fn an_account_exits_once_per_paid_exit_and_only_from_a_checkpoint_that_shows_it() {
    let mut w = World::new();
    let (bob, alice) = (user(1), user(0));
    w.deposit(&bob, &bob.address(), ETH);
    w.process_inbox();
    let first = w.checkpoint();
    assert!(w.start_account_exit(&bob, first).is_success());
    assert_eq!(reverted(&w.start_account_exit(&bob, first)), Some("AlreadyExiting"));
    w.process_inbox();
    w.l1.advance_time(params().challenge_period);
    w.finalize(10);
    assert_eq!(w.pull(l1(&bob)), ETH + params().exit_bond);
    // The old checkpoint still shows 1 ETH, but not the paid exit: that is taken off, nothing
    // is left to exit.
    assert_eq!(reverted(&w.start_account_exit(&bob, first)), Some("NothingToExit"));
    // Once TCP processed the payout and a checkpoint shows it, bob exits what he has since.
    w.process_inbox();
    w.deposit(&alice, &bob.address(), ETH / 4);
    w.process_inbox();
    let shown = w.checkpoint();
    assert!(w.start_account_exit(&bob, shown).is_success());
    w.l1.advance_time(params().challenge_period);
    w.finalize(10);
    assert_eq!(w.pull(l1(&bob)), ETH / 4 + params().exit_bond);
    assert_eq!(w.contract_balance(), 0);
}
