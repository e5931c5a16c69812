//! A real network on loopback: separate `tcpchain node` processes over commonware-p2p, driven
//! over JSON-RPC. One scenario, in order: 4 validators commit; transfers over RPC land on every
//! node; `kill -9` one validator and the rest go on; restart it and it catches up; kill two and
//! the chain halts without forking; restart them and it resumes; a fresh full node syncs from
//! height 0; every node holds the same blocks and the same balances. Bounded in time: every
//! wait has a deadline.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tcp_node::KeyStore;
use tcp_node::client::RpcClient;
use tcp_state::{Action, Transaction};

const BIN: &str = env!("CARGO_BIN_EXE_tcpchain");

struct Net {
    dir: PathBuf,
    homes: Vec<PathBuf>,
    rpc: Vec<String>,
    children: Vec<Option<Child>>,
}

impl Net {
    fn spawn(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.homes[i].join("node.log")).unwrap();
        let child = Command::new(BIN)
            .args(["node", "--home"])
            .arg(&self.homes[i])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[i] = Some(child);
    }

    fn kill9(&mut self, i: usize) {
        let mut c = self.children[i].take().expect("running");
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }

    fn status(&self, i: usize) -> Option<Value> {
        RpcClient::new(&self.rpc[i]).ok()?.call("status", json!([])).ok()
    }

    fn height(&self, i: usize) -> u64 {
        self.status(i).and_then(|s| s["height"].as_u64()).unwrap_or(0)
    }

    fn wait_height(&self, nodes: &[usize], height: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for &i in nodes {
            while self.height(i) < height {
                assert!(Instant::now() < deadline, "node {i} stuck at {} < {height}; logs in {}", self.height(i), self.dir.display());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn block_id(&self, i: usize, height: u64) -> Option<String> {
        let b = RpcClient::new(&self.rpc[i]).ok()?.call("block", json!([height])).ok()?;
        b["id"].as_str().map(str::to_string)
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.homes[i].join("node.log")).unwrap_or_default()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn init(dir: &Path, base_port: u16) {
    let out = Command::new(BIN)
        .args(["init", "--validators", "4", "--full-nodes", "1", "--block-interval-ms", "300", "--base-port"])
        .arg(base_port.to_string())
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn four_validators_survive_crashes_halt_without_quorum_and_a_full_node_syncs() {
    let dir = std::env::temp_dir().join(format!("tcp-net-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base_port = 30000 + (std::process::id() % 2000) as u16 * 10 % 20000;
    init(&dir, base_port);
    let names = ["validator-0", "validator-1", "validator-2", "validator-3", "full-0"];
    let homes: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let rpc: Vec<String> = (0..5).map(|i| format!("http://127.0.0.1:{}", base_port + 10 * i as u16 + 1)).collect();
    let mut net = Net { dir: dir.clone(), homes, rpc, children: (0..5).map(|_| None).collect() };
    for i in 0..4 {
        net.spawn(i);
    }
    let all = [0, 1, 2, 3];
    net.wait_height(&all, 3, Duration::from_secs(60));

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

    // kill -9 one validator: the other three go on.
    net.kill9(3);
    let h = net.height(0);
    net.wait_height(&[0, 1, 2], h + 3, Duration::from_secs(30));
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
        assert_eq!(account["balance"], "1000000000000000000000500", "node {i}");
        let a = RpcClient::new(&net.rpc[i]).unwrap().call("account", json!([alice.address().to_string()])).unwrap();
        assert_eq!(a["nonce"], 5, "node {i}");
    }
    assert!(committed_at >= 1);
    // No honest node ever saw an equivocation (no double-sign after the kills).
    for i in 0..5 {
        assert!(!net.log(i).contains("equivocation evidence"), "node {i} saw a double-sign");
    }
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
    for i in 0..5 {
        let c = net.children[i].take().unwrap();
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        let mut c = c;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "node {i} exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "node {i} ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

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
