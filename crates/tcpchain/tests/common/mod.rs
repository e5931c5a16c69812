//! What the process tests share: a network of `tcpchain node` processes on loopback, its
//! ports, and waits with deadlines.
#![allow(dead_code)] // each test binary uses a different part

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tcp_node::client::RpcClient;

pub const BIN: &str = env!("CARGO_BIN_EXE_tcpchain");

pub struct Net {
    pub dir: PathBuf,
    pub homes: Vec<PathBuf>,
    pub rpc: Vec<String>,
    pub children: Vec<Option<Child>>,
}

impl Net {
    pub fn spawn(&mut self, i: usize) {
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

    pub fn kill9(&mut self, i: usize) {
        let mut c = self.children[i].take().expect("running");
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }

    /// SIGTERM node `i` and require a clean exit within 10 s.
    pub fn sigterm(&mut self, i: usize) {
        let mut c = self.children[i].take().expect("running");
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "node {i} exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "node {i} ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn status(&self, i: usize) -> Option<Value> {
        RpcClient::new(&self.rpc[i]).ok()?.call("status", json!([])).ok()
    }

    pub fn height(&self, i: usize) -> u64 {
        self.status(i).and_then(|s| s["height"].as_u64()).unwrap_or(0)
    }

    pub fn wait_height(&self, nodes: &[usize], height: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for &i in nodes {
            while self.height(i) < height {
                if Instant::now() >= deadline {
                    let log = self.log(i);
                    let tail: Vec<&str> = log.lines().rev().take(30).collect::<Vec<_>>().into_iter().rev().collect();
                    panic!(
                        "node {i} stuck at {} < {height}; logs in {}; its last lines:\n{}",
                        self.height(i),
                        self.dir.display(),
                        tail.join("\n")
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    pub fn block_id(&self, i: usize, height: u64) -> Option<String> {
        let b = RpcClient::new(&self.rpc[i]).ok()?.call("block", json!([height])).ok()?;
        b["id"].as_str().map(str::to_string)
    }

    pub fn log(&self, i: usize) -> String {
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

/// `tcpchain init` of 4 validators and 1 full node (`full-0`) in `dir`, with `extra` arguments.
pub fn init(dir: &Path, base_port: u16, extra: &[&str]) {
    let out = Command::new(BIN)
        .args(["init", "--validators", "4", "--full-nodes", "1", "--block-interval-ms", "300"])
        .args(extra)
        .arg("--base-port")
        .arg(base_port.to_string())
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Make `full-0` a validator-to-be: role validator, key not in the genesis (it validates once
/// bonded).
pub fn make_full_node_a_candidate(dir: &Path) {
    let config_path = dir.join("full-0").join("config.json");
    let config = std::fs::read_to_string(&config_path).unwrap().replace("\"role\": \"full\"", "\"role\": \"validator\"");
    std::fs::write(&config_path, config).unwrap();
}

/// A base port whose node ports (p2p +0, RPC +1, metrics +4 for each of `nodes`) are all free,
/// below Linux's ephemeral range (32768+) so no outgoing connection can take one mid-test.
pub fn free_base_port(nodes: u16) -> u16 {
    let start = 10_000 + (std::process::id() % 2_000) as u16 * 10;
    (0..200u16)
        .map(|k| 10_000 + (start - 10_000 + k * 50) % 22_000)
        .find(|&base| (0..nodes).all(|i| [0, 1, 4].iter().all(|o| std::net::TcpListener::bind(("127.0.0.1", base + 10 * i + o)).is_ok())))
        .expect("no free block of ports below 32768")
}

/// The 5 nodes `init` makes, with their RPC addresses.
pub fn net(dir: &Path, base_port: u16) -> Net {
    let names = ["validator-0", "validator-1", "validator-2", "validator-3", "full-0"];
    let homes: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let rpc: Vec<String> = (0..5).map(|i| format!("http://127.0.0.1:{}", base_port + 10 * i as u16 + 1)).collect();
    Net { dir: dir.to_path_buf(), homes, rpc, children: (0..5).map(|_| None).collect() }
}

/// Run `tcpchain` with `args`; (exit code, stdout, stderr).
pub fn tcpchain(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Poll `f` every 100 ms until it returns `Some`, or panic with `what` after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
