//! A validator killed with `kill -9` in the middle of a live reshare, on a real network of
//! `tcpchain node` processes: it restarts, finishes the reshare from the dealings it had
//! acked (written before each ack) or from the logs' reveals, and signs precommits with valid
//! beacon partials again — still within the epoch it was killed in, and in the next one with
//! its new share. Every block's `last_commit` carries only precommits whose partial every
//! validator checked, so a signer listed there signed a valid partial. DKMP's master secret is
//! reshared at the same boundary (same engine, its own shares): the killed validator ends up
//! holding a share of M in the new group, whose public key is the old one.

mod common;
use common::*;

use serde_json::{Value, json};
use std::time::Duration;
use tcp_node::client::RpcClient;

const EPOCH: u64 = 40;
const RESHARE_WINDOW: u64 = 20;

fn block(net: &Net, height: u64) -> Option<Value> {
    let b = RpcClient::new(&net.rpc[0]).ok()?.call("block", json!([height])).ok()?;
    (!b.is_null()).then_some(b)
}

/// Whether the block of `height` carries `index`'s precommit for `height - 1`.
fn carries(net: &Net, height: u64, index: u64) -> bool {
    block(net, height).is_some_and(|b| b["last_commit"]["signers"].as_array().is_some_and(|s| s.iter().any(|v| v.as_u64() == Some(index))))
}

#[test]
fn a_validator_killed_mid_reshare_signs_with_valid_partials_again_within_its_epoch() {
    let dir = std::env::temp_dir().join(format!("tcp-reshare-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base_port = free_base_port(5);
    init(&dir, base_port, &["--epoch-length", &EPOCH.to_string(), "--reshare-window", &RESHARE_WINDOW.to_string()]);
    // The 5th node validates once bonded: the set changes, so the beacon reshares to it.
    make_full_node_a_candidate(&dir);
    let mut net = net(&dir, base_port);
    for i in 0..5 {
        net.spawn(i);
    }
    net.wait_height(&[0, 1, 2, 3, 4], 3, Duration::from_secs(60));
    let group_key = net.status(0).unwrap()["group_key"].as_str().expect("the beacon runs").to_string();
    // The first secret-share group's DKG completes within its window.
    let rpc = net.rpc.clone();
    let sssg = |i: usize| RpcClient::new(&rpc[i]).ok()?.call("sssg", json!([])).ok();
    let master_key = wait_for("the first secret-share group", Duration::from_secs(60), || {
        sssg(0)?["serving"]["master_public_key"].as_str().map(str::to_string)
    });
    let home = net.dir.to_str().unwrap().to_string();
    let full_home = dir.join("full-0");
    let (code, out, err) = tcpchain(&[
        "tx", "bond", "--from", "alice", "--node-home", full_home.to_str().unwrap(), "--amount", "2000000", "--home", &home, "--rpc",
        &net.rpc[0], "--wait",
    ]);
    assert_eq!(code, 0, "{out}{err}");

    // The reshare to the 5-validator set starts at the plan height; kill validator 1 once it
    // is a few heights in (dealings sent and acked), and bring it back.
    let round = wait_for("the reshare to start", Duration::from_secs(120), || net.status(1)?["ceremony_round"].as_u64());
    let started = net.height(1);
    net.wait_height(&[1], started + 3, Duration::from_secs(30));
    let before = net.status(1).unwrap();
    let index = before["validator_index"].as_u64().expect("validator 1 validates");
    let epoch_start = before["epoch_start"].as_u64().unwrap();
    let epoch_end = epoch_start + EPOCH - 1;
    let killed_at = net.height(0);
    assert_eq!(before["ceremony_round"].as_u64(), Some(round), "killed while the reshare runs");
    assert!(killed_at + 6 < epoch_end, "room left in the epoch: killed at {killed_at}, it ends at {epoch_end}");
    net.kill9(1);
    std::thread::sleep(Duration::from_secs(2));
    net.spawn(1);

    // Within the same epoch: a block carries its precommit (with a valid partial).
    let signed_at = wait_for("validator 1 to sign a carried precommit again", Duration::from_secs(60), || {
        let top = net.height(0);
        if let Some(h) = (killed_at + 1..=epoch_end.min(top.saturating_sub(1))).find(|h| carries(&net, h + 1, index)) {
            return Some(h);
        }
        assert!(top <= epoch_end + 1, "epoch {epoch_start}..={epoch_end} ended without a precommit of the restarted validator");
        None
    });
    assert!(signed_at > killed_at && signed_at <= epoch_end, "signed at {signed_at}, epoch ends at {epoch_end}");

    // The reshare completed with it: the next epoch has five validators, the same group key,
    // and the restarted validator signs with its new share there too.
    let next_start = wait_for("the next epoch with the new set", Duration::from_secs(120), || {
        let s = net.status(1)?;
        (s["validators"] == 5 && s["epoch_start"].as_u64()? > epoch_start).then(|| s["epoch_start"].as_u64().unwrap())
    });
    let s = net.status(1).unwrap();
    assert_eq!(s["group_key"].as_str(), Some(group_key.as_str()), "the reshare kept the group key");
    assert!(s["reshares"].as_u64().unwrap() >= 1, "{s}");
    let index = s["validator_index"].as_u64().expect("still a validator");
    wait_for("validator 1 to sign with its new share", Duration::from_secs(60), || {
        let top = net.height(0);
        (next_start + 1..top).find(|h| carries(&net, *h + 1, index))
    });
    // The master secret was reshared to the new group too, with M's public key unchanged; the
    // restarted validator is a member and holds its share of the new group's ceremony.
    let group = wait_for("the new epoch's secret-share group", Duration::from_secs(60), || {
        let g = sssg(1)?;
        (g["serving"]["epoch"].as_u64()? >= s["epoch"].as_u64()?).then_some(g)
    });
    assert_eq!(group["serving"]["master_public_key"].as_str(), Some(master_key.as_str()), "{group}");
    assert_eq!((group["reshares"].as_u64(), group["ceremonies_failed"].as_u64()), (Some(1), Some(0)), "{group}");
    let genesis: Value = serde_json::from_slice(&std::fs::read(dir.join("genesis.json")).unwrap()).unwrap();
    let key = genesis["validators"][1]["consensus_key"].as_str().unwrap().to_string();
    let members: Vec<&str> = group["serving"]["members"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(members.len(), 5, "{group}");
    assert!(members.contains(&key.as_str()), "{group}");
    let round = group["serving"]["round"].as_u64().unwrap();
    assert!(net.homes[1].join("dkmp").join(format!("share-{round}")).exists(), "validator 1 holds its share of M from ceremony {round}");
    let log = net.log(1);
    assert!(!log.contains("panicked"), "{log}");
}
