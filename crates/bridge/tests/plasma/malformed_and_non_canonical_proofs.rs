//! Malformed and non-canonical proofs: values of another length, proofs with a sibling added,
//! removed or changed, a proof deeper than any path, an absence proof, a checkpoint that does
//! not exist; each refused with its error.

use crate::world::*;
use tcp_bridge::plasma;
use tcp_state::Action;

#[test]
fn every_malformed_proof_is_refused() {
    let mut w = World::new();
    let alice = user(0);
    w.deposit(&alice, &alice.address(), ETH);
    w.process_inbox();
    w.tcp_send(&alice, Action::Withdraw { recipient: l1(&alice), amount: ETH / 2 }).unwrap();
    let relay = w.make_checkpoint();
    let bond = params().exit_bond;
    // The status leaf with a byte more or less.
    let mut long = relay.clone();
    long.status.push(0);
    assert_eq!(reverted(&w.send(w.relayer, 0, long.calldata())), Some("BadStatusLeaf"));
    let mut short = relay.clone();
    short.status.pop();
    assert_eq!(reverted(&w.send(w.relayer, 0, short.calldata())), Some("BadStatusLeaf"));
    // A sibling changed, added (an empty one: a longer path to the same leaf), or removed.
    let mut changed = relay.clone();
    changed.siblings[0][0] ^= 1;
    assert_eq!(reverted(&w.send(w.relayer, 0, changed.calldata())), Some("ProofDoesNotVerify"));
    let mut added = relay.clone();
    added.siblings.push([0; 32]);
    assert_eq!(reverted(&w.send(w.relayer, 0, added.calldata())), Some("ProofDoesNotVerify"));
    let mut removed = relay.clone();
    removed.siblings.pop();
    assert_eq!(reverted(&w.send(w.relayer, 0, removed.calldata())), Some("ProofDoesNotVerify"));
    let mut deep = relay.clone();
    deep.siblings = vec![[1; 32]; 257];
    assert_eq!(reverted(&w.send(w.relayer, 0, deep.calldata())), Some("TooDeep"));
    assert!(w.send(w.relayer, 0, relay.calldata()).is_success());
    let height = relay.height;

    let (record, siblings) = w.withdrawal_proof(height, 0);
    let exit = |w: &mut World, record: &[u8], id: u64, siblings: &[[u8; 32]], at: u64| {
        w.send(l1(&alice), bond, plasma::start_withdrawal_exit(at, id, record, siblings))
    };
    let mut padded = record.clone();
    padded.push(0);
    assert_eq!(reverted(&exit(&mut w, &padded, 0, &siblings, height)), Some("BadRecord"));
    // The record under another id: another key.
    assert_eq!(reverted(&exit(&mut w, &record, 1, &siblings, height)), Some("ProofDoesNotVerify"));
    // A record that does not exist: its proof is of absence, no value.
    let (absent, absent_siblings) = w.withdrawal_proof(height, 5);
    assert!(absent.is_empty());
    assert_eq!(reverted(&exit(&mut w, &absent, 5, &absent_siblings, height)), Some("BadRecord"));
    // A height without a checkpoint.
    assert_eq!(reverted(&exit(&mut w, &record, 0, &siblings, height + 1)), Some("NoSuchCheckpoint"));
    // Alice's account leaf, its amount raised.
    let (mut account, account_siblings) = w.account_proof(height, &alice.address());
    account[15] ^= 1;
    let outcome = w.send(l1(&alice), bond, plasma::start_account_exit(height, &account, &account_siblings));
    assert_eq!(reverted(&outcome), Some("ProofDoesNotVerify"));
    // An account leaf a byte short or long.
    let (account, account_siblings) = w.account_proof(height, &alice.address());
    for bad in [&account[..28], &[&account[..], &[0]].concat()[..]] {
        let outcome = w.send(l1(&alice), bond, plasma::start_account_exit(height, bad, &account_siblings));
        assert_eq!(reverted(&outcome), Some("BadRecord"));
    }
    // The real ones work.
    assert!(exit(&mut w, &record, 0, &siblings, height).is_success());
    assert!(w.start_account_exit(&alice, height).is_success());
    // A challenge with a malformed leaf (committed, so the commitment is not what refuses it).
    w.tcp_send(&alice, Action::BridgeTransfer { to: user(1).address(), amount: 1 }).unwrap();
    let later = w.checkpoint();
    let (leaf, leaf_siblings) = w.account_proof(later, &alice.address());
    let short = &leaf[..28];
    let watcher = l1_address(3);
    let salt = [1; 32];
    assert!(w.send(watcher, 0, plasma::commit_challenge(plasma::challenge_commitment(1, watcher, later, short, salt))).is_success());
    let outcome = w.send(watcher, 0, plasma::challenge_account_exit(1, salt, later, short, &leaf_siblings));
    assert_eq!(reverted(&outcome), Some("BadRecord"));
}
