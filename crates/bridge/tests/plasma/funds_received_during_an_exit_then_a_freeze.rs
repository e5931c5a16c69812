//! Funds received while an account exit is under way, then a freeze: the last checkpoint shows
//! the exit's amount still in the balance (TCP had not processed the payout). An exit from it
//! pays the balance less what was paid since, so what the account received is not stranded and
//! nothing is paid twice.

use crate::world::*;
use tcp_state::Action;

#[test]
fn an_exit_from_a_checkpoint_that_predates_a_paid_exit_pays_the_rest() {
    let mut w = World::new();
    let (alice, bob) = (user(0), user(1));
    w.deposit(&alice, &alice.address(), ETH);
    w.deposit(&bob, &bob.address(), 5 * ETH);
    w.process_inbox();
    let first = w.checkpoint();
    assert!(w.start_account_exit(&alice, first).is_success());
    w.process_inbox();
    w.tcp_send(&bob, Action::BridgeTransfer { to: alice.address(), amount: 5 * ETH }).unwrap();
    let last = w.checkpoint();
    assert_eq!(w.snapshots[&last].bridge_account(&alice.address()).balance, 6 * ETH);
    // TCP halts; the exit is paid; the bridge freezes.
    w.l1.advance_time(params().challenge_period);
    w.finalize(10);
    assert_eq!(w.pull(l1(&alice)), ETH + params().exit_bond);
    w.l1.advance_time(params().freeze_period);
    assert!(w.frozen());
    // From the last checkpoint (which shows no exit processed): 6 − 1 = 5.
    assert!(w.start_account_exit(&alice, last).is_success());
    w.l1.advance_time(params().challenge_period);
    w.finalize(10);
    assert_eq!(w.pull(l1(&alice)), 5 * ETH + params().exit_bond);
    assert_eq!(w.contract_balance(), 0);
}
