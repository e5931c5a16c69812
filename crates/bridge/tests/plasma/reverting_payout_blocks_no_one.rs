//! A payout that reverts blocks no one: finalizing only credits, every recipient pulls its own,
//! and a recipient that cannot receive pulls into another address.

use crate::world::*;
use tcp_bridge::plasma::{self, IPayoutAttacker};
use tcp_state::Action;
use alloy_sol_types::SolCall as _;

pub fn deploy_attacker(w: &mut World) -> [u8; 20] {
    let code = tcp_bridge::payout_attacker().bytecode;
    w.l1.deploy(plasma::payout_attacker_creation(&code, w.root)).unwrap()
}

/// Alice withdraws `amount` on TCP to `recipient`; the record's id.
pub fn withdraw_to(w: &mut World, recipient: [u8; 20], amount: u128) -> u64 {
    let alice = user(0);
    let id = w.tcp.bridge_status().unwrap().next_withdrawal;
    w.tcp_send(&alice, Action::Withdraw { recipient, amount }).unwrap();
    id
}

pub fn attacker_exit(w: &mut World, attacker: [u8; 20], height: u64, id: u64) {
    let (record, siblings) = w.withdrawal_proof(height, id);
    let call = IPayoutAttacker::startWithdrawalExitCall { height, recordId: id, record: record.into(), siblings: siblings.iter().map(|s| (*s).into()).collect() };
    let owner = l1_address(2);
    let outcome = w.l1.send(owner, attacker, params().exit_bond, call.abi_encode()).unwrap();
    assert!(outcome.is_success(), "{outcome:?}");
}

#[test]
fn a_recipient_that_refuses_payment_blocks_no_other_exit() {
    let mut w = World::new();
    let alice = user(0);
    let attacker = deploy_attacker(&mut w);
    w.deposit(&alice, &alice.address(), 3 * ETH);
    w.process_inbox();
    let bad = withdraw_to(&mut w, attacker, ETH);
    let good = withdraw_to(&mut w, l1(&alice), ETH);
    let height = w.checkpoint();
    attacker_exit(&mut w, attacker, height, bad);
    assert!(w.start_withdrawal_exit(l1(&alice), height, good).is_success());
    w.l1.send(l1_address(2), attacker, 0, IPayoutAttacker::setModeCall { mode: 1 }.abi_encode()).unwrap();
    w.l1.advance_time(params().challenge_period);
    let finalize = w.finalize(10);
    assert!(finalize.is_success(), "finalizing never pays, so never reverts: {finalize:?}");
    assert_eq!(w.pull(l1(&alice)), ETH + params().exit_bond);
    // The attacker's own pull fails; its credit stays, and it can pull elsewhere.
    let pull = w.l1.send(l1_address(2), attacker, 0, IPayoutAttacker::pullCall {}.abi_encode()).unwrap();
    assert!(!pull.is_success());
    assert_eq!(w.withdrawable(attacker), ETH + params().exit_bond);
    let sink = [0x99; 20];
    let pull_to = w.l1.send(l1_address(2), attacker, 0, IPayoutAttacker::pullToCall { to: sink.into() }.abi_encode()).unwrap();
    assert!(pull_to.is_success(), "{pull_to:?}");
    assert_eq!(w.l1.balance(sink).to::<u128>(), ETH + params().exit_bond);
    assert_eq!(w.contract_balance(), ETH);
}
