//! Confidential contracts end to end on a real network of processes (issue 20; rotation: issue
//! 19 item 6): a client deploys a contract through a compute node, a data owner seals records
//! to the contract's verified key and uploads them to a data source, a client executes over
//! them and opens a result checked against the chain; the owner is paid per use, on the
//! record; the result opens only with the group's key of its identity, released for committed
//! requests only; a replayed request is refused; a failing call is a receipt with a readable
//! error and its fee; after a rotation the next execution re-encrypts under the new generation.

mod common;
use common::*;

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tcp_node::client::RpcClient;

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The data source process, stopped when dropped.
struct DataSource(Child);

impl Drop for DataSource {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn records(values: &[i64]) -> Vec<u8> {
    let mut out = (values.len() as u32).to_le_bytes().to_vec();
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn balance(rpc: &str, address: &str) -> u128 {
    RpcClient::new(rpc).unwrap().call("account", json!([address])).unwrap()["balance"].as_str().unwrap().parse().unwrap()
}

#[test]
fn a_contract_is_deployed_fed_encrypted_data_executed_and_its_result_checked_against_the_chain() {
    let dir = std::env::temp_dir().join(format!("tcp-contracts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base_port = free_base_port(6);
    init(&dir, base_port, &["--compute-nodes", "1"]);
    let mut net = net(&dir, base_port);
    net.homes.push(dir.join("compute-0"));
    net.rpc.push(format!("http://127.0.0.1:{}", base_port + 51));
    net.children.push(None);
    for i in 0..6 {
        net.spawn(i);
    }
    let rpc = net.rpc[0].clone();
    let compute = net.rpc[5].clone();
    let datasource_url = format!("http://127.0.0.1:{}", base_port + 7);
    std::fs::create_dir_all(dir.join("datasource")).unwrap();
    let log = std::fs::File::create(dir.join("datasource/datasource.log")).unwrap();
    let _datasource = DataSource(
        Command::new(BIN)
            .args(["datasource", "--home", dir.join("datasource").to_str().unwrap(), "--listen", &datasource_url[7..], "--rpc", &rpc])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_for("the compute node's enclave to be registered", Duration::from_secs(120), || {
        let nodes = RpcClient::new(&rpc).ok()?.call("compute_nodes", json!([])).ok()?;
        nodes["compute_nodes"][0]["enclaves"].as_array()?.iter().any(|e| e["current"] == true).then_some(())
    });
    let home = dir.to_str().unwrap();
    let genesis = dir.join("genesis.json");
    let genesis = genesis.to_str().unwrap();
    let keys = tcp_node::KeyStore::open(&dir).unwrap();
    let (alice, bob) = (keys.show("alice").unwrap().address.to_string(), keys.show("bob").unwrap().address.to_string());

    // Deploy aggregate-stats.
    let wasm = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts/wasm/aggregate_stats.wasm");
    let (code, out, err) = tcpchain(&[
        "contract", "deploy", "--wasm", wasm.to_str().unwrap(), "--compute", &compute, "--home", home, "--from", "alice", "--genesis", genesis, "--wait", "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let deployed = json_of(&out);
    assert_eq!((deployed["call_status"].as_str(), deployed["result_verified"].as_bool()), (Some("ok"), Some(true)), "{deployed}");
    let cid = deployed["cid"].as_str().unwrap().to_string();
    let code_hash = tcp_crypto::sha256(&[&std::fs::read(&wasm).unwrap()]).0;
    let nonce = deployed["nonce"].as_u64().unwrap();
    let alice_bytes: [u8; 20] = tcp_types::hex::decode(&alice[2..]).unwrap().try_into().unwrap();
    assert_eq!(cid, tcp_types::hex::encode(&tcp_dkmp::contract_id(&code_hash, &alice_bytes, nonce)));

    // Bob seals records to the contract and uploads them at his price.
    let file = dir.join("records.bin");
    std::fs::write(&file, records(&[10, 20, 30])).unwrap();
    let (code, out, err) = tcpchain(&[
        "data", "put", file.to_str().unwrap(), "--datasource", &datasource_url, "--contract", &cid, "--price", "10", "--home", home, "--from", "bob", "--rpc", &rpc, "--genesis", genesis, "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let blob = json_of(&out)["hash"].as_str().unwrap().to_string();
    let stored = std::fs::read(dir.join("datasource/blobs").join(format!("{blob}.blob"))).unwrap();
    assert!(!stored.windows(8).any(|w| w == 20i64.to_le_bytes()), "the data source keeps only ciphertext");

    // Alice runs it over Bob's records: the result opens and matches the chain's commitment.
    let (alice_before, bob_before) = (balance(&rpc, &alice), balance(&rpc, &bob));
    let execute = |extra: &[&str]| {
        let mut args = vec!["contract", "execute", cid.as_str(), "--compute", compute.as_str(), "--home", home, "--from", "alice", "--genesis", genesis, "--json"];
        args.extend_from_slice(extra);
        tcpchain(&args)
    };
    let (code, out, err) = execute(&["--data", &blob]);
    assert_eq!(code, 0, "{err}");
    let executed = json_of(&out);
    assert_eq!(executed["result_verified"], true, "{executed}");
    let result = tcp_types::hex::decode(executed["result_hex"].as_str().unwrap()).unwrap();
    assert_eq!((&result[..8], &result[8..16]), (&3u64.to_le_bytes()[..], &60i64.to_le_bytes()[..]), "count 3, sum 60");
    let block = executed["block_height"].as_u64().unwrap();
    net.wait_height(&[0], block, Duration::from_secs(10));
    assert_eq!(balance(&rpc, &bob), bob_before + 10, "the owner is paid per use");
    // The fee: the node's base fee (1000) and its transaction's gas at the gas price (1).
    let fee: u128 = executed["fee"].as_str().unwrap().parse().unwrap();
    let gas = RpcClient::new(&rpc).unwrap().call("receipt", json!([executed["tx_hash"]])).unwrap()["gas_used"].as_u64().unwrap();
    assert_eq!(fee, 1_000 + u128::from(gas), "{executed}");
    assert_eq!(balance(&rpc, &alice), alice_before - fee - 10, "the client pays the fee and the price");
    let (_, out, _) = tcpchain(&["query", "data-usage", "--owner", &bob, "--rpc", &rpc, "--json"]);
    let usage = json_of(&out);
    assert_eq!((usage["count"].as_u64(), usage["uses"][0]["amount"].as_str()), (Some(1), Some("10")), "{usage}");
    assert_eq!(usage["uses"][0]["request_id"], executed["request_id"]);
    // Only hashes and ciphertexts are public: the receipt has the sealed result, not the totals.
    let receipt = RpcClient::new(&rpc).unwrap().call("receipt", json!([executed["tx_hash"]])).unwrap();
    assert_eq!(receipt["compute"]["result_hash"], executed["result_hash"]);
    let sealed = tcp_types::hex::decode(receipt["compute"]["result"].as_str().unwrap()).unwrap();
    assert!(!sealed.windows(8).any(|w| w == 60i64.to_le_bytes()));

    // A result key is released only for a committed request: the group is not even asked for
    // one that is not (an operator running the enclave off chain on its own requests opens
    // nothing).
    let uncommitted = RpcClient::new(&rpc).unwrap().call("dkmp_result_key", json!(["ab".repeat(32)])).unwrap_err().to_string();
    assert!(uncommitted.contains("not committed"), "{uncommitted}");

    // The same signed request again, straight to the compute node: refused (committed already).
    let signer = keys.load("alice").unwrap();
    let contract = RpcClient::new(&rpc).unwrap().call("contract", json!([cid])).unwrap();
    let cid_bytes: [u8; 32] = tcp_types::hex::decode(&cid).unwrap().try_into().unwrap();
    let public_key: [u8; 32] = tcp_types::hex::decode(contract["public_key"].as_str().unwrap()).unwrap().try_into().unwrap();
    let chain = tcp_types::ChainId::new("tcp-devnet").unwrap();
    let input = tcp_enclave::compute::seal_to_contract(tcp_enclave::compute::Sealed::Input, &chain, &cid_bytes, 0, &public_key, b"", b"");
    let request = tcp_state::ComputeRequest {
        chain_id: chain,
        call: tcp_state::Call::Execute { cid: cid_bytes, data: vec![tcp_types::hex::decode(&blob).unwrap().try_into().unwrap()] },
        input_hash: tcp_crypto::sha256(&[&input]).0,
        result_key: [0x42; 32],
        max_fee: 1_000_000,
        nonce: 77,
        valid_until: net.height(0) + 100,
    }
    .sign(&signer);
    let params = json!([{"request": tcp_types::hex::encode(&request.encode()), "input": tcp_types::hex::encode(&input)}]);
    let call = || RpcClient::new(&compute).unwrap().with_timeout(Duration::from_secs(100)).call("compute_execute", params.clone());
    call().unwrap();
    let replay = call().unwrap_err().to_string();
    assert!(replay.contains("committed already"), "{replay}");

    // A call that fails (no data for aggregate-stats to read) is a receipt with its error.
    let (code, out, _) = execute(&[]);
    assert_eq!(code, 1);
    let failed = json_of(&out);
    assert_eq!((failed["call_status"].as_str(), failed["result_verified"].as_bool()), (Some("failed"), Some(true)), "{failed}");
    assert!(failed["fee"].as_str().unwrap().parse::<u128>().unwrap() > 1_000, "a failed call is charged: {failed}");
    assert!(failed["result_text"].as_str().is_some_and(|t| !t.is_empty()), "the client reads the error: {failed}");

    // Rotation: only the owner; the next execution re-encrypts under generation 1, and the data
    // sealed to generation 0 still serves.
    let (code, _, err) = tcpchain(&["tx", "rotate-key", "--cid", &cid, "--home", home, "--from", "bob", "--rpc", &rpc, "--wait"]);
    assert!(code != 0 && err.contains("only the contract's owner"), "{err}");
    let (code, _, err) = tcpchain(&["tx", "rotate-key", "--cid", &cid, "--home", home, "--from", "alice", "--rpc", &rpc, "--wait"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = execute(&["--data", &blob]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = tcpchain(&["contract", "show", &cid, "--rpc", &rpc, "--genesis", genesis, "--json"]);
    assert_eq!(code, 0, "{err}");
    let shown = json_of(&out);
    assert_eq!((shown["generation"].as_u64(), shown["key_generation"].as_u64()), (Some(1), Some(1)), "{shown}");
    assert_ne!(shown["public_key"], contract["public_key"], "the new generation's key is published");
}
