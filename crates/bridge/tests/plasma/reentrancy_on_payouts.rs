//! Reentrancy on payouts: a recipient that re-enters `withdraw` or `finalizeExits` from its
//! receive hook is paid once, and the contract's books stay whole.

use crate::reverting_payout_blocks_no_one::{attacker_exit, deploy_attacker, withdraw_to};
use crate::world::*;
use alloy_sol_types::SolCall as _;
use tcp_bridge::plasma::IPayoutAttacker;

fn attack(mode: u8) {
    let mut w = World::new();
    let alice = user(0);
    let attacker = deploy_attacker(&mut w);
    w.deposit(&alice, &alice.address(), 3 * ETH);
    w.process_inbox();
    let first = withdraw_to(&mut w, attacker, ETH);
    let second = withdraw_to(&mut w, attacker, ETH);
    let height = w.checkpoint();
    attacker_exit(&mut w, attacker, height, first);
    w.l1.advance_time(params().challenge_period / 2);
    attacker_exit(&mut w, attacker, height, second);
    w.l1.advance_time(params().challenge_period / 2);
    // Only the first exit is due; the attacker re-enters while being paid for it.
    w.finalize(10);
    w.l1.send(l1_address(2), attacker, 0, IPayoutAttacker::setModeCall { mode }.abi_encode()).unwrap();
    let pull = w.l1.send(l1_address(2), attacker, 0, IPayoutAttacker::pullCall {}.abi_encode()).unwrap();
    assert!(pull.is_success(), "{pull:?}");
    let view = |w: &mut World, call: Vec<u8>| match w.l1.view(attacker, call).unwrap() {
        tcp_bridge::CallOutcome::Success { output, .. } => u128::from_be_bytes(output[16..32].try_into().unwrap()),
        other => panic!("{other:?}"),
    };
    assert_eq!(view(&mut w, IPayoutAttacker::reenteredCall {}.abi_encode()), 0, "no re-entry succeeded");
    assert_eq!(view(&mut w, IPayoutAttacker::refusedCall {}.abi_encode()), 1);
    assert_eq!(w.l1.balance(attacker).to::<u128>(), ETH + params().exit_bond, "paid once");
    assert_eq!(w.withdrawable(attacker), 0);
    // The second exit is still pending and settles on its own time.
    assert_eq!(w.contract_balance(), 2 * ETH + params().exit_bond);
    w.l1.advance_time(params().challenge_period);
    w.finalize(10);
    assert_eq!(w.withdrawable(attacker), ETH + params().exit_bond);
}

#[test]
fn re_entering_withdraw_pays_nothing_twice() {
    attack(2);
}

#[test]
fn re_entering_finalize_from_a_payout_is_refused() {
    attack(3);
}
