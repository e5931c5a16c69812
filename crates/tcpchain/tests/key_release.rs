//! Contract keys from the live secret-share group (issue 19, items 4–5), real processes and
//! sockets: a compute node's enclave obtains a deploy key with `tcpchain dkmp request`; every
//! member that answered records the release on chain (`query releases`, `query exposure`);
//! after the group changes epoch (new shares, here also other members) the same request gives
//! the same key; a request the members refuse (a contract that does not exist) fails with a
//! clear error and no key.

mod common;
use common::*;

use serde_json::{Value, json};
use std::time::Duration;
use tcp_node::client::RpcClient;

fn sssg(rpc: &str) -> Option<Value> {
    RpcClient::new(rpc).ok()?.call("sssg", json!([])).ok()
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

#[test]
fn an_enclave_obtains_a_contract_key_from_the_live_group_and_every_release_is_on_chain() {
    let dir = std::env::temp_dir().join(format!("tcp-key-release-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base_port = free_base_port(6);
    init(&dir, base_port, &["--compute-nodes", "1", "--sssg-size", "3", "--epoch-length", "20", "--reshare-window", "10"]);
    let mut net = net(&dir, base_port);
    let home = dir.join("compute-0");
    net.homes.push(home.clone());
    net.rpc.push(format!("http://127.0.0.1:{}", base_port + 51));
    net.children.push(None);
    for i in 0..6 {
        net.spawn(i);
    }
    let rpc = net.rpc[0].clone();
    wait_for("the compute node's enclave to be registered", Duration::from_secs(120), || {
        let nodes = RpcClient::new(&rpc).ok()?.call("compute_nodes", json!([])).ok()?;
        nodes["compute_nodes"][0]["enclaves"].as_array()?.iter().any(|e| e["current"] == true).then_some(())
    });

    // The first key of the contract credit_score.wasm makes when alice deploys it with nonce 0.
    let wasm = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts/wasm/credit_score.wasm");
    let deployer = "0x00000000000000000000000000000000000000a1";
    let home_arg = home.to_str().unwrap();
    let request = |extra: &[&str]| {
        let mut args = vec!["dkmp", "request", "--home", home_arg, "--json"];
        args.extend_from_slice(extra);
        tcpchain(&args)
    };
    let deploy = ["--deploy-wasm", wasm.to_str().unwrap(), "--deployer", deployer, "--deploy-nonce", "0"];
    let (code, out, err) = request(&deploy);
    assert_eq!(code, 0, "{err}");
    let first = json_of(&out);
    let code_hash = tcp_crypto::sha256(&[&std::fs::read(&wasm).unwrap()]).0;
    let mut deployer_bytes = [0u8; 20];
    deployer_bytes[19] = 0xa1;
    let cid = tcp_dkmp::contract_id(&code_hash, &deployer_bytes, 0);
    assert_eq!(first["cid"], tcp_types::hex::encode(&cid), "the members recomputed the id the enclave named");
    let answered = first["answered"].as_array().unwrap().len();
    assert!(answered >= first["threshold"].as_u64().unwrap() as usize, "{first}");
    assert!(first["bad"].as_array().unwrap().is_empty(), "{first}");

    // Every member that answered records it; any node answers from its state, with proofs.
    let cid_hex = tcp_types::hex::encode(&cid);
    let releases = wait_for("the release records on chain", Duration::from_secs(30), || {
        let (code, out, _) = tcpchain(&["query", "releases", "--cid", &cid_hex, "--rpc", &net.rpc[4], "--json"]);
        let v = json_of(&out);
        (code == 0 && v["releases"][0]["members"].as_array().is_some_and(|m| m.len() == answered)).then_some(v)
    });
    let release = &releases["releases"][0];
    assert_eq!((release["generation"].as_u64(), release["purpose"].as_str()), (Some(0), Some("deploy")));
    assert!(releases["proofs"].as_array().unwrap().iter().all(|p| p["proof_type"] == "inclusion"), "{releases}");
    let measurement = release["measurement"].as_str().unwrap().to_string();
    let (_, out, _) = tcpchain(&["query", "exposure", "--measurement", &measurement, "--rpc", &rpc, "--json"]);
    assert_eq!(json_of(&out)["exposed"], json!([{"cid": cid_hex, "generation": 0}]));

    // The group reshares at the epoch's end: a later group, the same key.
    let epoch = first["epoch"].as_u64().unwrap();
    wait_for("a later group to serve", Duration::from_secs(60), || {
        sssg(&rpc).and_then(|s| (s["serving"]["epoch"].as_u64()? > epoch).then_some(()))
    });
    let (code, out, err) = request(&deploy);
    assert_eq!(code, 0, "{err}");
    let again = json_of(&out);
    assert!(again["epoch"].as_u64().unwrap() > epoch);
    assert_eq!(again["public_key"], first["public_key"], "the master secret was reshared, not replaced");

    // A contract that does not exist has no key to execute with: every member refuses.
    let (code, _, err) = request(&["--cid", &"ab".repeat(32)]);
    assert!(code != 0 && err.contains("could not recover the key from 0 answers"), "{err}");
    let (_, out, _) = tcpchain(&["query", "releases", "--cid", &"ab".repeat(32), "--rpc", &rpc, "--json"]);
    assert_eq!(json_of(&out)["count"], 0, "a refused request is not on the record");
}
