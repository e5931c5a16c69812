//! Checkpoint replay: a checkpoint is good for one TCP chain (φ signs its chain id), one
//! contract and one root chain (the status leaf it proves names both).

use crate::world::*;
use tcp_bridge::plasma;

#[test]
fn a_checkpoint_is_refused_by_another_contract_and_another_chains_checkpoint_by_this_one() {
    let mut w = World::new();
    // A second PlasmaRoot of the same chain and group on the same root chain.
    let twin = w.l1.deploy(plasma::plasma_root_creation(&tcp_bridge::plasma_root().bytecode, CHAIN, &w.group.key(), &params())).unwrap();
    let relay = w.make_checkpoint();
    let outcome = w.l1.send(w.relayer, twin, 0, relay.calldata()).unwrap();
    assert_eq!(reverted(&outcome), Some("WrongRootChain"), "the status leaf names the first contract");
    assert!(w.send(w.relayer, 0, relay.calldata()).is_success());

    // Another TCP chain (another chain id, the same group key): its φ does not verify here.
    let mut other = World::with("tcp-other", params());
    let foreign = other.make_checkpoint();
    assert_eq!(reverted(&w.send(w.relayer, 0, foreign.calldata())), Some("FinalityDoesNotVerify"));

    // This chain's state bridged to another root chain id: refused.
    let mut elsewhere = World::new();
    elsewhere.tcp.enable_bridge(1, w.root);
    elsewhere.height = 10;
    let relay = elsewhere.make_checkpoint();
    assert_eq!(reverted(&w.send(w.relayer, 0, relay.calldata())), Some("WrongRootChain"));
}
