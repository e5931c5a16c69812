//! Exits bound to their owner: nobody but a record's recipient exits it, and an account exit is
//! always of the sender's own account (its key is derived from msg.sender).

use crate::world::*;
use tcp_bridge::plasma;
use tcp_state::Action;

#[test]
fn nobody_exits_anothers_record_or_account() {
    let mut w = World::new();
    let (alice, mallory) = (user(0), user(2));
    w.deposit(&alice, &alice.address(), ETH);
    w.process_inbox();
    w.tcp_send(&alice, Action::Withdraw { recipient: l1(&alice), amount: ETH / 2 }).unwrap();
    let height = w.checkpoint();
    assert_eq!(reverted(&w.start_withdrawal_exit(l1(&mallory), height, 0)), Some("NotTheOwner"));
    // Alice's account leaf, sent by mallory: it is not the leaf of mallory's key.
    let (account, siblings) = w.account_proof(height, &alice.address());
    let outcome = w.send(l1(&mallory), params().exit_bond, plasma::start_account_exit(height, &account, &siblings));
    assert_eq!(reverted(&outcome), Some("ProofDoesNotVerify"));
    // An account with nothing bridged has no leaf to prove.
    assert_eq!(reverted(&w.start_account_exit(&mallory, height)), Some("BadRecord"));
    // The owner can, with the bond exactly.
    let (record, siblings) = w.withdrawal_proof(height, 0);
    let short = w.send(l1(&alice), params().exit_bond - 1, plasma::start_withdrawal_exit(height, 0, &record, &siblings));
    assert_eq!(reverted(&short), Some("WrongBond"));
    assert!(w.start_withdrawal_exit(l1(&alice), height, 0).is_success());
}
