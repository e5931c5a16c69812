//! A real network on loopback: separate `tcpchain node` processes over commonware-p2p, driven
//! over JSON-RPC. One scenario, in order: 4 validators commit; transfers over RPC land on every
//! node; `kill -9` one validator and the rest go on; restart it and it catches up; kill two and
//! the chain halts without forking; restart them and it resumes; a fresh full node syncs from
//! height 0; every node holds the same blocks and the same balances. Bounded in time: every
//! wait has a deadline.

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tcp_node::KeyStore;
use tcp_node::client::RpcClient;
use tcp_state::{Action, Transaction};

mod common;
use common::*;

#[test]
fn four_validators_survive_crashes_halt_without_quorum_and_a_full_node_syncs() {
    let dir = std::env::temp_dir().join(format!("tcp-net-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base_port = free_base_port(5);
    init(&dir, base_port, &[]);
    let mut net = net(&dir, base_port);
    for i in 0..4 {
        net.spawn(i);
    }
    let all = [0, 1, 2, 3];
    net.wait_height(&all, 3, Duration::from_secs(60));

    // A second node from a running node's home is refused at once, naming the home.
    let (code, _, stderr) = tcpchain(&["node", "--home", net.homes[0].to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(stderr.contains("another node is running from"), "{stderr}");

    // Transfers over RPC, through different nodes.
    let store = KeyStore::open(&dir).unwrap();
    let alice = store.load("alice").unwrap();
    let bob = store.show("bob").unwrap().address;
    let chain_id = tcp_types::ChainId::new(net.status(0).unwrap()["chain_id"].as_str().unwrap()).unwrap();
    let mut hashes = Vec::new();
    for nonce in 0..5u64 {
        let tx = Transaction { chain_id: chain_id.clone(), nonce, gas_price: 2, gas_limit: 21_000, action: Action::Transfer { to: bob, amount: 100 } }.sign(&alice);
        let mut client = RpcClient::new(&net.rpc[nonce as usize % 4]).unwrap();
        let hash = client.call("send_transaction", json!([tcp_types::hex::encode(&tx.encode())])).unwrap();
        hashes.push(hash.as_str().unwrap().to_string());
    }
    // A replay and a wrong-chain transaction are refused with clear errors.
    let replay = Transaction { chain_id: chain_id.clone(), nonce: 0, gas_price: 2, gas_limit: 21_000, action: Action::Transfer { to: bob, amount: 100 } }.sign(&alice);
    let other_chain = Transaction { chain_id: tcp_types::ChainId::new("other").unwrap(), nonce: 5, gas_price: 2, gas_limit: 21_000, action: Action::Transfer { to: bob, amount: 1 } }.sign(&alice);
    let mut client = RpcClient::new(&net.rpc[0]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut committed_at = 0;
    for hash in &hashes {
        loop {
            let r = client.call("receipt", json!([hash])).unwrap();
            if let Some(h) = r["block_height"].as_u64() {
                committed_at = committed_at.max(h);
                break;
            }
            assert!(Instant::now() < deadline, "transfer {hash} not committed");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for tx in [replay, other_chain] {
        let err = client.call("send_transaction", json!([tcp_types::hex::encode(&tx.encode())])).unwrap_err().to_string();
        assert!(err.contains("-32000"), "{err}");
    }

    // WebSocket: new heads arrive in order; a receipt subscription fires for a committed
    // transaction at once and for one submitted after subscribing when it commits.
    let ws_url = format!("{}/ws", net.rpc[1].replace("http://", "ws://"));
    let (mut ws, _) = tungstenite::connect(ws_url.as_str()).expect("WebSocket connects");
    let heads_sub = ws_call(&mut ws, 1, "subscribe", json!(["newHeads"]));
    let first = ws_notification(&mut ws, &heads_sub)["height"].as_u64().unwrap();
    let second = ws_notification(&mut ws, &heads_sub)["height"].as_u64().unwrap();
    assert_eq!(second, first + 1, "heads skip or repeat");
    assert_eq!(ws_call(&mut ws, 2, "unsubscribe", json!([heads_sub])), json!(true));
    let done_sub = ws_call(&mut ws, 3, "subscribe", json!(["receipt", hashes[0]]));
    assert!(ws_notification(&mut ws, &done_sub)["block_height"].as_u64().is_some());
    let late = Transaction { chain_id: chain_id.clone(), nonce: 5, gas_price: 2, gas_limit: 21_000, action: Action::Transfer { to: bob, amount: 100 } }.sign(&alice);
    let late_hash = tcp_types::hex::encode(late.hash().as_ref());
    let late_sub = ws_call(&mut ws, 4, "subscribe", json!(["receipt", late_hash]));
    let sent = client.call("send_transaction", json!([tcp_types::hex::encode(&late.encode())])).unwrap();
    assert_eq!(sent.as_str(), Some(late_hash.as_str()));
    let receipt = ws_notification(&mut ws, &late_sub);
    assert!(receipt["block_height"].as_u64().unwrap() > committed_at, "{receipt}");
    drop(ws);

    // kill -9 one validator: the other three go on, and stop counting it as a peer (`status`
    // counts the peers heard from lately, not every peer ever heard from; issue 22, item 3).
    let peers = |net: &Net| net.status(0).and_then(|s| s["peers"].as_u64()).unwrap_or(0);
    let before = wait_for("validator-0 counting its three peers", Duration::from_secs(30), || (peers(&net) >= 3).then(|| peers(&net)));
    net.kill9(3);
    let h = net.height(0);
    net.wait_height(&[0, 1, 2], h + 3, Duration::from_secs(30));
    wait_for("validator-0 to stop counting the killed validator", Duration::from_secs(15), || (peers(&net) == before - 1).then_some(()));
    // Restart it: it catches up.
    net.spawn(3);
    let h = net.height(0);
    net.wait_height(&[3], h, Duration::from_secs(60));

    // kill -9 two: no quorum, the chain halts (at most the height in flight completes).
    net.kill9(2);
    net.kill9(3);
    std::thread::sleep(Duration::from_millis(1500));
    let halted = net.height(0).max(net.height(1));
    std::thread::sleep(Duration::from_secs(3));
    assert!(net.height(0) <= halted && net.height(1) <= halted, "committed without a quorum");
    // Restart both: it resumes.
    net.spawn(2);
    net.spawn(3);
    net.wait_height(&all, halted + 3, Duration::from_secs(60));

    // A fresh full node syncs from height 0.
    net.spawn(4);
    let target = net.height(0);
    net.wait_height(&[4], target, Duration::from_secs(90));
    assert_eq!(net.status(4).unwrap()["role"], "full");

    // Every node: the same blocks, the same balances.
    let top = (0..5).map(|i| net.height(i)).min().unwrap();
    for height in 1..=top {
        let id = net.block_id(0, height).expect("block");
        for i in 1..5 {
            assert_eq!(net.block_id(i, height).as_deref(), Some(id.as_str()), "node {i} differs at height {height}");
        }
    }
    for i in 0..5 {
        let account = RpcClient::new(&net.rpc[i]).unwrap().call("account", json!([bob.to_string()])).unwrap();
        assert_eq!(account["balance"], "1000000000000000000000600", "node {i}");
        let a = RpcClient::new(&net.rpc[i]).unwrap().call("account", json!([alice.address().to_string()])).unwrap();
        assert_eq!(a["nonce"], 6, "node {i}");
    }
    assert!(committed_at >= 1);

    // State proofs: bob's account proves with its balance against the header's root (the CLI
    // verifies it end to end); an absent account proves absent; a tampered proof fails.
    let genesis = net.dir.join("genesis.json");
    let out = Command::new(BIN)
        .args(["query", "proof", "--verify", "--json", "--rpc", &net.rpc[2], "--genesis"])
        .arg(&genesis)
        .arg("--account")
        .arg(bob.to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "query proof failed: {}", String::from_utf8_lossy(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((shown["verified"].as_bool(), shown["account"]["balance"].as_str()), (Some(true), Some("1000000000000000000000600")));

    // The light client: a header and its φ from one node verify against the genesis's group
    // key (and the one pinned on first use); another chain id or a pinned key the RPC does not
    // match are refused.
    let light = |extra: &[&str]| {
        let out = Command::new(BIN).args(["light", "verify", "--json", "--rpc", &net.rpc[1]]).args(extra).output().unwrap();
        (out.status.code(), serde_json::from_slice::<Value>(&out.stdout).ok(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    // φ of a node's last height comes with the next block (the CLI waits for it).
    let verified_height = top;
    let height = verified_height.to_string();
    let (code, verified, err) = light(&["--height", &height, "--genesis", genesis.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let verified = verified.unwrap();
    assert_eq!((verified["verified"].as_bool(), verified["height"].as_u64(), verified["pairings"].as_u64()), (Some(true), Some(verified_height), Some(1)));
    assert_eq!(verified["state_root"], RpcClient::new(&net.rpc[0]).unwrap().call("block", json!([verified_height])).unwrap()["state_root"]);
    let group_key = RpcClient::new(&net.rpc[0]).unwrap().call("light_client_info", json!([])).unwrap()["group_key"].as_str().unwrap().to_string();
    let (code, refused, _) = light(&["--height", &height, "--chain-id", "another-chain", "--group-key", &group_key]);
    assert_eq!((code, refused.unwrap()["verified"].as_bool()), (Some(1), Some(false)));
    let anchors = net.dir.join("light-anchors");
    let anchors = anchors.to_str().unwrap();
    let (code, _, err) = light(&["--height", &height, "--anchors", anchors]);
    assert_ne!(code, Some(0), "no anchor pinned and no --trust-on-first-use: refused");
    assert!(err.contains("no trust anchor"), "{err}");
    let (code, _, err) = light(&["--height", &height, "--anchors", anchors, "--trust-on-first-use"]);
    assert_eq!(code, Some(0), "first use pins the anchor: {err}");
    let pinned = std::fs::read_dir(anchors).unwrap().next().unwrap().unwrap().path();
    let mut other_key = group_key.clone().into_bytes();
    other_key[10] = if other_key[10] == b'0' { b'1' } else { b'0' };
    std::fs::write(&pinned, json!({"group_key": String::from_utf8(other_key).unwrap()}).to_string()).unwrap();
    let (code, _, err) = light(&["--height", &height, "--anchors", anchors]);
    assert_ne!(code, Some(0));
    assert!(err.contains("pins"), "{err}");
    let mut client = RpcClient::new(&net.rpc[1]).unwrap();
    let absent = client.call("state_proof", json!(["0x00000000000000000000000000000000000000aa"])).unwrap();
    let (height, root, proof) = tcp_node::proof::proof_from_json(&absent).unwrap();
    assert_eq!(proof.verify(&root), Ok(None));
    assert_eq!(client.call("block", json!([height])).unwrap()["state_root"].as_str(), Some(tcp_types::hex::encode(&root).as_str()));
    let mut tampered = shown.clone();
    let balance_at = 2 * (20 + 15); // hex offset of the balance's last byte in the account value
    let mut value = tampered["value"].as_str().unwrap().to_string();
    value.replace_range(balance_at..balance_at + 2, "ff");
    tampered["value"] = json!(value);
    let (_, root, proof) = tcp_node::proof::proof_from_json(&tampered).unwrap();
    assert!(proof.verify(&root).is_err(), "a tampered proof verified");
    // Every node reports the same state root at every height.
    for height in 1..=top {
        let root = RpcClient::new(&net.rpc[0]).unwrap().call("block", json!([height])).unwrap()["state_root"].clone();
        assert!(root.is_string());
        for i in 1..5 {
            assert_eq!(RpcClient::new(&net.rpc[i]).unwrap().call("block", json!([height])).unwrap()["state_root"], root, "node {i} at {height}");
        }
    }
    // No honest node ever saw an equivocation (no double-sign after the kills).
    for i in 0..5 {
        assert!(!net.log(i).contains("equivocation evidence"), "node {i} saw a double-sign");
    }
    // Metrics are served, and count what was committed.
    let metrics = http_get(&net.rpc[0].replace("http://", "").replace(&format!(":{}", base_port + 1), &format!(":{}", base_port + 4)), "/metrics");
    let committed_metric = metric(&metrics, "committed_transactions");
    assert!(committed_metric >= 6.0, "committed_transactions {committed_metric}");

    // A peer that sends garbage is blocked, and the chain goes on. The follower's identity is
    // the one non-validator the validators let in: stop the real follower and impersonate it.
    net.sigterm(4);
    send_garbage_as(&net.homes[4]);
    for i in 0..4 {
        let port = base_port + 10 * i as u16 + 4;
        let deadline = Instant::now() + Duration::from_secs(20);
        while metric(&http_get(&format!("127.0.0.1:{port}"), "/metrics"), "p2p_bad_messages") < 1.0 {
            assert!(Instant::now() < deadline, "validator-{i} did not count the garbage");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let h = net.height(0);
    net.wait_height(&all, h + 2, Duration::from_secs(30));

    // Bad RPC input: each gets a JSON-RPC error with its code, and the node carries on.
    let addr = net.rpc[0].trim_start_matches("http://").to_string();
    assert_eq!(raw_rpc(&addr, b"{not json"), -32700);
    assert_eq!(raw_rpc(&addr, br#"{"jsonrpc":"2.0","id":1,"method":"nope","params":[]}"#), -32601);
    assert_eq!(raw_rpc(&addr, br#"{"jsonrpc":"2.0","id":1,"method":"block","params":["x"]}"#), -32602);
    assert_eq!(raw_rpc(&addr, br#"{"jsonrpc":"2.0","id":1,"method":"send_transaction","params":["zz"]}"#), -32602);
    assert_eq!(raw_rpc(&addr, br#"{"id":1,"method":"status"}"#), -32600);
    assert_eq!(raw_rpc(&addr, &vec![b' '; 2 * 1024 * 1024]), -32600);
    let big_batch = format!("[{}]", vec![r#"{"jsonrpc":"2.0","id":1,"method":"status"}"#; 1001].join(","));
    assert_eq!(raw_rpc(&addr, big_batch.as_bytes()), -32600);
    assert!(net.status(0).is_some(), "the node survives bad RPC input");

    // Clean shutdown on SIGTERM.
    for i in 0..4 {
        net.sigterm(i);
    }

    // A taken port is a clear error at start, not a half-running node.
    let holder = std::net::TcpListener::bind(("127.0.0.1", base_port)).unwrap();
    let out = Command::new(BIN).args(["node", "--home"]).arg(&net.homes[0]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("cannot listen for p2p"), "{stderr}");
    drop(holder);

    // A corrupted data directory is refused at start with a clear message.
    std::fs::write(net.homes[0].join("data/chain.redb"), vec![0x5a; 8192]).unwrap();
    let out = Command::new(BIN).args(["node", "--home"]).arg(&net.homes[0]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("data directory is unusable"), "{stderr}");
}

/// POST raw bytes to a node's RPC and return the JSON-RPC error code of the answer.
fn raw_rpc(addr: &str, body: &[u8]) -> i64 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!("POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let json = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let value: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("not a JSON answer ({e}): {text}"));
    value["error"]["code"].as_i64().unwrap_or_else(|| panic!("no error in {value}"))
}

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

/// One call over WebSocket; notifications that arrive first are skipped.
fn ws_call(ws: &mut Ws, id: u64, method: &str, params: Value) -> Value {
    let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    ws.send(tungstenite::Message::text(request.to_string())).unwrap();
    loop {
        let answer = ws_next(ws);
        if answer["id"] == json!(id) {
            return answer.get("result").cloned().unwrap_or_else(|| panic!("{method} failed: {answer}"));
        }
    }
}

/// The next notification for `subscription` (others are skipped).
fn ws_notification(ws: &mut Ws, subscription: &Value) -> Value {
    loop {
        let message = ws_next(ws);
        if message["method"] == "subscription" && message["params"]["subscription"] == *subscription {
            return message["params"]["result"].clone();
        }
    }
}

fn ws_next(ws: &mut Ws) -> Value {
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    loop {
        match ws.read().expect("WebSocket message within 20 s") {
            tungstenite::Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            tungstenite::Message::Close(_) => panic!("the node closed the WebSocket"),
            _ => {}
        }
    }
}

/// Join the p2p network with the follower identity in `home` and send garbage: an undecodable
/// message to validators 0 and 1 on the consensus channel, an unverifiable transaction to
/// validators 2 and 3 on the gossip channel.
fn send_garbage_as(home: &Path) {
    use commonware_p2p::{Recipients, Sender as _};
    use commonware_runtime::Runner as _;
    use tcp_node::genesis::{ChainSpec, NodeConfig};
    use tcp_node::wire::Wire;
    let config = NodeConfig::load(home).unwrap();
    let spec = ChainSpec::load(&config.genesis_path(home)).unwrap();
    let secrets = tcp_node::keystore::NodeSecrets::load(&home.join("node_key.json")).unwrap();
    let validators: Vec<_> = spec.validators.iter().map(|v| v.key.clone()).collect();
    let runner = commonware_runtime::tokio::Runner::new(commonware_runtime::tokio::Config::new().with_storage_directory(home.join("garbage-runtime")));
    runner.start(|context| async move {
        let mut p2p = tcp_node::p2p::connect(&context, &config, &spec, &secrets.consensus_key, &[]).unwrap();
        let hello = Wire::Status { height: tcp_types::Height(0), round: tcp_types::Round(0) }.encode();
        let deadline = Instant::now() + Duration::from_secs(30);
        while p2p.consensus.0.send(Recipients::All, hello.clone(), false).len() < validators.len() {
            assert!(Instant::now() < deadline, "could not reach every validator");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let invalid_tx = Wire::Transactions(vec![vec![7u8; 120]]).encode();
        for (i, key) in validators.iter().enumerate() {
            let sent = if i < 2 {
                p2p.consensus.0.send(Recipients::One(key.clone()), vec![0xee, 1, 2, 3], false)
            } else {
                p2p.transactions.0.send(Recipients::One(key.clone()), invalid_tx.clone(), false)
            };
            assert_eq!(sent.len(), 1, "garbage not sent to validator-{i}");
        }
        // Give the messages time to leave before the runtime shuts the connections.
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
}

/// GET `path` from `addr` (host:port) and return the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
}

/// The value of a Prometheus metric whose name ends with `name` (the runtime prefixes labels).
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let key = key.split('{').next()?;
            let key = key.strip_suffix("_total").unwrap_or(key);
            (key == name || key.ends_with(&format!("_{name}"))).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}
