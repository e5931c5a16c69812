//! Committee equivocation: two different headers of one height, each with a valid φ (only a
//! faulty third or more could sign both). Shown to the contract, they freeze the bridge;
//! checkpoints from that height on are not used, exits from them are cancelled with their
//! bonds returned, and exits from earlier ones go on.

use crate::world::*;
use tcp_bridge::plasma;
use tcp_state::Action;

#[test]
fn two_signed_headers_of_one_height_freeze_the_bridge() {
    let mut w = World::new();
    let (alice, bob) = (user(0), user(1));
    w.deposit(&alice, &alice.address(), ETH);
    w.deposit(&bob, &bob.address(), ETH);
    w.process_inbox();
    let safe = w.checkpoint();
    w.tcp_send(&alice, Action::BridgeTransfer { to: bob.address(), amount: ETH / 2 }).unwrap();
    let forked = w.checkpoint();
    assert!(w.start_account_exit(&bob, forked).is_success()); // exit 0: from the forked height
    assert!(w.start_account_exit(&alice, safe).is_success()); // exit 1: from before it
    // The same header twice is no equivocation.
    let (header, round, signature) = w.group.header(&w.chain, forked, [5; 32], 0);
    let same = plasma::prove_equivocation((&header, round, &signature), (&header, round, &signature));
    assert_eq!(reverted(&w.send(w.relayer, 0, same)), Some("NotEquivocation"));
    // Another header of that height, also signed.
    let (other, other_round, other_signature) = w.group.header(&w.chain, forked, [6; 32], 1);
    let proof = plasma::prove_equivocation((&header, round, &signature), (&other, other_round, &other_signature));
    let outcome = w.send(w.relayer, 0, proof);
    assert!(outcome.is_success(), "{:?}", reverted(&outcome));
    println!("proveEquivocation: {} gas", outcome.gas());
    assert!(w.frozen());
    let next = w.make_checkpoint();
    assert_eq!(reverted(&w.send(w.relayer, 0, next.calldata())), Some("Frozen"));
    assert_eq!(reverted(&w.start_account_exit(&alice, forked)), Some("CheckpointNotUsable"));
    assert_eq!(reverted(&w.start_withdrawal_exit(l1(&bob), forked, 0)), Some("CheckpointNotUsable"));
    w.l1.advance_time(params().challenge_period);
    w.finalize(10);
    let bond = params().exit_bond;
    assert_eq!(w.pull(l1(&bob)), bond, "the exit from the forked height is cancelled, its bond returned");
    assert_eq!(w.pull(l1(&alice)), ETH + bond, "the exit from before it is paid");
    // Bob exits again, from the last usable checkpoint.
    assert!(w.start_account_exit(&bob, safe).is_success());
    w.l1.advance_time(params().challenge_period);
    w.finalize(10);
    assert_eq!(w.pull(l1(&bob)), ETH + bond);
    assert_eq!(w.contract_balance(), 0);
}
