//! Staking on a real network of `tcpchain node` processes. A 5th node bonds and, at the next
//! epoch whose plan includes it, the validators reshare the beacon key to the new set over p2p:
//! the group key stays the same and the new validator then proposes and signs precommits. A
//! genesis validator made to equivocate (the harness signs two conflicting prevotes with its key)
//! is slashed and jailed on evidence anyone submits, and the chain goes on. A partial unbond
//! returns the stake after the unbonding period. Bad staking transactions are refused with their
//! reason. Every node reports the same state root at every height, and a validator's state proof
//! verifies.

mod common;
use common::*;

use serde_json::{Value, json};
use std::time::Duration;
use tcp_node::KeyStore;
use tcp_node::client::RpcClient;


const EPOCH: u64 = 30;

fn call(net: &Net, i: usize, method: &str, params: Value) -> Value {
    RpcClient::new(&net.rpc[i]).unwrap().call(method, params).unwrap()
}

fn staking(net: &Net, address: &str) -> Value {
    call(net, 0, "staking", json!([address]))
}

/// `tcpchain tx …` against node 0, from the network's key store; (exit code, stdout+stderr).
fn tx(net: &Net, args: &[&str]) -> (i32, String) {
    let home = net.dir.to_str().unwrap();
    let mut all = vec!["tx"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--home", home, "--rpc", &net.rpc[0], "--wait"]);
    let (code, out, err) = tcpchain(&all);
    (code, out + &err)
}

#[test]
fn a_bonded_node_joins_at_the_epoch_boundary_an_equivocator_is_slashed_and_unbonding_returns_stake() {
    let dir = std::env::temp_dir().join(format!("tcp-staking-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base_port = free_base_port(5);
    let epoch = EPOCH.to_string();
    let args = ["--epoch-length", &epoch, "--reshare-window", "15", "--unbonding-period", "10", "--jail-period", "10", "--accounts", "3"];
    init(&dir, base_port, &args);
    // The 5th node is to validate once bonded: role validator, key not in the genesis.
    make_full_node_a_candidate(&dir);
    let mut net = net(&dir, base_port);
    for i in 0..5 {
        net.spawn(i);
    }
    net.wait_height(&[0, 1, 2, 3, 4], 4, Duration::from_secs(60));
    let group_key = net.status(0).unwrap()["group_key"].as_str().expect("the beacon runs").to_string();
    assert_eq!(net.status(4).unwrap()["validators"], 4);

    let store = KeyStore::open(&dir).unwrap();
    let alice = store.show("alice").unwrap().address.to_string();
    let bob = store.show("bob").unwrap().address.to_string();
    let full_home = dir.join("full-0");

    // Bad input first: nothing to unbond or unjail, garbage evidence, a bond below the minimum.
    let (code, out) = tx(&net, &["unbond", "--from", "bob", "--amount", "5"]);
    assert_ne!(code, 0);
    assert!(out.contains("no validator bond"), "{out}");
    let (code, out) = tx(&net, &["unjail", "--from", "bob"]);
    assert!(code != 0 && out.contains("no validator bond"), "{out}");
    let (code, out) = tx(&net, &["submit-evidence", "--from", "bob", "--evidence", "00ff"]);
    assert!(code != 0 && out.contains("evidence"), "{out}");
    let (code, out) = tx(&net, &["bond", "--from", "alice", "--node-home", full_home.to_str().unwrap(), "--amount", "10"]);
    assert!(code != 0 && out.contains("below the minimum"), "{out}");

    // Carol registers a compute node (issue 19): a bad endpoint and a small bond are refused with
    // their reason, the node is listed in service, a second registration is refused, and its
    // bond goes back through the unbonding queue.
    let carol = store.show("carol").unwrap().address.to_string();
    let (code, out) = tx(&net, &["register-compute", "--from", "carol", "--endpoint", "ftp://compute", "--amount", "5000"]);
    assert!(code != 0 && out.contains("--endpoint"), "{out}");
    let endpoint = "https://compute-carol.example:8443";
    let (code, out) = tx(&net, &["register-compute", "--from", "carol", "--endpoint", endpoint, "--amount", "10"]);
    assert!(code != 0 && out.contains("below the minimum"), "{out}");
    let (code, out) = tx(&net, &["register-compute", "--from", "carol", "--endpoint", endpoint, "--amount", "5000"]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = tcpchain(&["query", "compute", "--rpc", &net.rpc[0], "--json"]);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    let node = &listed["compute_nodes"][0];
    assert_eq!((node["operator"].as_str(), node["endpoint"].as_str(), node["bonded"].as_str()), (Some(carol.as_str()), Some(endpoint), Some("5000")));
    assert_eq!(node["in_service"], true);
    let (code, out) = tx(&net, &["register-compute", "--from", "carol", "--endpoint", "https://again.example", "--amount", "5000"]);
    assert!(code != 0 && out.contains("already a bonded compute node"), "{out}");
    let (code, out) = tx(&net, &["unbond-compute", "--from", "carol", "--amount", "5000"]);
    assert_eq!(code, 0, "{out}");
    // Unbonded in full, the node leaves the list; its stake is queued apart from validators'.
    let listed = call(&net, 0, "compute_nodes", json!([]));
    assert_eq!(listed["compute_nodes"], json!([]));
    assert_eq!((listed["unbonding"][0]["operator"].as_str(), listed["unbonding"][0]["amount"].as_str()), (Some(carol.as_str()), Some("5000")));
    assert_eq!(staking(&net, &carol)["unbonding"], json!([]));

    // Alice bonds the 5th node's key.
    let (code, out) = tx(&net, &["bond", "--from", "alice", "--node-home", full_home.to_str().unwrap(), "--amount", "2000000"]);
    assert_eq!(code, 0, "{out}");
    let entry = staking(&net, &alice);
    assert_eq!(entry["validator"]["bonded"], "2000000");
    assert_eq!(entry["validator"]["status"], "candidate");
    assert_eq!(entry["validator"]["bls_key"].as_str().map(str::len), Some(192), "the BLS key is registered");
    // Bonding twice, or unbonding more than bonded, is refused with the reason.
    let (code, out) = tx(&net, &["bond", "--from", "alice", "--node-home", full_home.to_str().unwrap(), "--amount", "2000000"]);
    assert!(code != 0 && out.contains("already has a validator bond"), "{out}");
    let (code, out) = tx(&net, &["unbond", "--from", "alice", "--amount", "3000000"]);
    assert!(code != 0 && out.contains("cannot unbond 3000000: 2000000 is bonded"), "{out}");

    // The next epoch whose plan holds it starts with 5 validators: the beacon key was reshared
    // to them on the live network, and the group key did not change.
    let joined_at = wait_for("the 5th node to join the validator set", Duration::from_secs(120), || {
        let s = net.status(4)?;
        (s["validator_index"].is_u64() && s["validators"] == 5).then(|| s["epoch_start"].as_u64().unwrap())
    });
    assert_eq!(joined_at % EPOCH, 1, "sets change only at epoch boundaries");
    for i in 0..5 {
        let s = net.status(i).unwrap();
        assert_eq!(s["group_key"].as_str(), Some(group_key.as_str()), "node {i}: the reshare changed the group key");
        assert!(s["reshares"].as_u64().unwrap() >= 1, "node {i}: {s}");
    }
    // The state records the set once the epoch's first block is committed.
    let full_key = wait_for("the state to record the new set", Duration::from_secs(30), || {
        let v = call(&net, 0, "validators", json!([]));
        let active = v["active"].as_array()?;
        active.iter().find(|m| m["operator"].as_str() == Some(alice.as_str()))?["index"].as_u64()
    });
    assert_eq!(staking(&net, &alice)["validator"]["status"], "active");
    // It proposes (the beacon draws it) and its precommits are in the commits blocks carry.
    wait_for("a block built by the new validator", Duration::from_secs(60), || {
        let top = net.height(0);
        (joined_at..=top).any(|h| call(&net, 0, "block", json!([h]))["proposer"].as_u64() == Some(full_key)).then_some(())
    });
    wait_for("the new validator's signed precommits in the state", Duration::from_secs(30), || {
        let record = &staking(&net, &alice)["validator"]["record"];
        (record["precommits_signed"].as_u64()? >= 2 && record["proposals_made"].as_u64()? >= 1).then_some(())
    });

    // Validator 3 equivocates (the harness signs two conflicting prevotes with its key); bob
    // reports it and is paid; validator 3 is slashed 10 % and jailed; the same evidence again
    // is refused.
    let v3 = store.show("validator-3-rewards").unwrap().address.to_string();
    let before = staking(&net, &v3)["validator"]["bonded"].as_str().unwrap().parse::<u128>().unwrap();
    let (code, evidence, err) = tcpchain(&["harness", "equivocate", "--node-home", dir.join("validator-3").to_str().unwrap(), "--rpc", &net.rpc[0]]);
    assert_eq!(code, 0, "{err}");
    let bob_before = staking(&net, &bob)["balance"].as_str().unwrap().parse::<u128>().unwrap();
    let (code, out) = tx(&net, &["submit-evidence", "--from", "bob", "--evidence", evidence.trim()]);
    assert_eq!(code, 0, "{out}");
    let jailed = staking(&net, &v3)["validator"].clone();
    assert_eq!(jailed["status"], "jailed");
    let slashed = jailed["slashed"].as_str().unwrap().parse::<u128>().unwrap();
    // 10 % of the bond at the evidence's block (rewards keep compounding into it until then:
    // at most 1000 per block).
    assert!(slashed >= before / 10 && slashed <= (before + 30_000) / 10, "{before} then {jailed}");
    let bob_after = staking(&net, &bob)["balance"].as_str().unwrap().parse::<u128>().unwrap();
    assert_eq!(bob_after, bob_before - tcp_state::staking::EVIDENCE_GAS as u128 + slashed / 10, "the reporter gets 10 % of the slash, less its fee");
    let (code, out) = tx(&net, &["submit-evidence", "--from", "bob", "--evidence", evidence.trim()]);
    assert!(code != 0 && out.contains("already punished"), "{out}");
    let (code, out) = tx(&net, &["unjail", "--from", "validator-3-rewards"]);
    assert!(code != 0, "{out}"); // no balance for the fee yet, and still jailed
    // The chain goes on.
    let h = net.height(0);
    net.wait_height(&[0, 1, 2, 3, 4], h + 3, Duration::from_secs(30));

    // Bob bonds a validator that never runs: the reshare to a set holding it fails (its shares
    // had to be revealed), the epoch is extended with the old set, and the retry leaves it out.
    let ghost_home = dir.join("ghost");
    std::fs::create_dir_all(&ghost_home).unwrap();
    let bls_key = { use rand_core::SeedableRng; tcp_beacon::validator_key::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(0x6705)).0 };
    tcp_node::keystore::NodeSecrets { consensus_key: tcp_crypto::insecure_ed25519_from_seed(0x6705), bls_key, beacon_share: None }
        .save(&ghost_home.join("node_key.json"))
        .unwrap();
    let (code, out) = tx(&net, &["bond", "--from", "bob", "--node-home", ghost_home.to_str().unwrap(), "--amount", "1000000", "--p2p-address", "127.0.0.1:9"]);
    assert_eq!(code, 0, "{out}");

    // A partial unbond: the stake comes back after the period.
    let (code, out) = tx(&net, &["unbond", "--from", "alice", "--amount", "1000000"]);
    assert_eq!(code, 0, "{out}");
    let entry = staking(&net, &alice);
    let release = entry["unbonding"][0]["release_height"].as_u64().expect("an unbonding entry");
    let balance = entry["balance"].as_str().unwrap().parse::<u128>().unwrap();
    net.wait_height(&[0], release, Duration::from_secs(30));
    let entry = staking(&net, &alice);
    assert_eq!(entry["unbonding"], json!([]));
    let returned = entry["balance"].as_str().unwrap().parse::<u128>().unwrap() - balance;
    assert!(returned >= 1_000_000, "only {returned} came back");

    // The jailed validator and the absent one end up out of the set; the group key never changed.
    let v3_key = tcp_node::keystore::NodeSecrets::load(&dir.join("validator-3").join("node_key.json")).unwrap();
    let v3_key = { use commonware_cryptography::Signer as _; tcp_node::genesis::encode_ed25519_public(&v3_key.consensus_key.public_key()) };
    wait_for("the set without the jailed and the absent validator, after an extended epoch", Duration::from_secs(150), || {
        let s = net.status(0)?;
        let v = call(&net, 0, "validators", json!([]));
        let active = v["active"].as_array()?;
        let keys: Vec<&str> = active.iter().filter_map(|m| m["consensus_key"].as_str()).collect();
        (s["epochs_extended"].as_u64()? >= 1 && active.len() == 4 && !keys.contains(&v3_key.as_str())).then_some(())
    });
    assert_eq!(staking(&net, &bob)["validator"]["status"], "candidate", "the absent validator is not activated");
    assert_eq!(staking(&net, &alice)["validator"]["status"], "active");
    for i in 0..5 {
        assert_eq!(net.status(i).unwrap()["group_key"].as_str(), Some(group_key.as_str()), "node {i}");
    }
    let h = net.height(0);
    net.wait_height(&[0, 1, 2, 4], h + 3, Duration::from_secs(30));

    // Every node has the same state root at every height, and the validator entry's proof
    // verifies against it.
    let top = net.height(0).min(net.height(4));
    for h in 1..=top {
        let root = call(&net, 0, "block", json!([h]))["state_root"].clone();
        for i in 1..5 {
            assert_eq!(call(&net, i, "block", json!([h]))["state_root"], root, "node {i} differs at height {h}");
        }
    }
    let genesis = net.dir.join("genesis.json");
    let (code, out, err) =
        tcpchain(&["query", "proof", "--validator", &alice, "--verify", "--genesis", genesis.to_str().unwrap(), "--rpc", &net.rpc[4]]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("by its finality signature"), "{out}");
}
