//! The bridge end to end on a real node (issue 21, item 6): anvil from npm
//! (`scripts/install-anvil.sh`; the test says SKIPPED only where npm cannot install it), a
//! devnet bridged to it (`devnet --bridge http://…`: PlasmaRoot deployed for the chain's group
//! key), and the user's CLI: deposit → credited on TCP → transfer → withdraw → checkpoint →
//! exit → finalize, balances checked on both chains; an exit after a spend, which the
//! validators' watcher challenges by itself; then the validators are stopped, the bridge
//! freezes, and a user exits from the last checkpoint with the proof she saved.

mod common;
use common::*;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tcp_node::client::RpcClient;

const ETH: u128 = 1_000_000_000_000_000_000;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while self.0.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cli(args: &[&str]) -> Value {
    let (code, out, err) = tcpchain(args);
    assert_eq!(code, 0, "tcpchain {args:?} failed:\n{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("tcpchain {args:?}: not JSON ({e}):\n{out}"))
}

fn quantity(v: &Value) -> u128 {
    u128::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
}

#[test]
fn deposit_withdraw_exit_a_watched_cheat_and_the_escape_hatch_on_anvil() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let install = Command::new("bash").arg(root.join("scripts/install-anvil.sh")).output().unwrap();
    if !install.status.success() {
        println!("SKIPPED: anvil could not be installed: {}", String::from_utf8_lossy(&install.stderr));
        return;
    }
    let anvil_bin = String::from_utf8(install.stdout).unwrap().trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _anvil = Killed(Command::new(anvil_bin).args(["--port", &port.to_string(), "--hardfork", "prague", "--silent"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let root_rpc = format!("http://127.0.0.1:{port}");
    let mut l1 = wait_for("anvil", Duration::from_secs(30), || {
        let mut c = RpcClient::new(&root_rpc).ok()?;
        c.call("eth_chainId", json!([])).ok()?;
        Some(c)
    });

    let dir = std::env::temp_dir().join(format!("tcp-bridge-e2e-{}", std::process::id()));
    let base_port = free_base_port(5);
    let log = std::fs::File::create(std::env::temp_dir().join(format!("tcp-bridge-e2e-{}.log", std::process::id()))).unwrap();
    let devnet = Killed(
        Command::new(env!("CARGO_BIN_EXE_tcpchain"))
            .args(["devnet", "--validators", "4", "--compute-nodes", "0", "--bridge", &root_rpc, "--reset", "--base-port", &base_port.to_string(), "--dir"])
            .arg(&dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let rpc = format!("http://127.0.0.1:{}", base_port + 1);
    // Up, with finality signatures running (the CLI checks the node's word against a header
    // the light client verifies, anchored in the genesis file).
    wait_for("the bridged devnet's finality", Duration::from_secs(90), || {
        let mut client = RpcClient::new(&rpc).ok()?;
        let height = client.call("bridge", json!([])).ok()?["height"].as_u64()?;
        (!client.call("header", json!([height])).ok()?["finality"].is_null()).then_some(())
    });
    let home = dir.to_str().unwrap();
    let genesis = dir.join("genesis.json");
    let chains = ["--rpc", &rpc, "--root-rpc", &root_rpc, "--home", home, "--genesis", genesis.to_str().unwrap(), "--json"];
    let with = |args: &[&str]| -> Vec<String> { args.iter().chain(chains.iter()).map(|s| s.to_string()).collect() };
    let run = |args: &[&str]| -> Value {
        let owned = with(args);
        cli(&owned.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let address = |name: &str| -> String {
        let (_, out, _) = tcpchain(&["keys", "show", name, "--home", home]);
        out.split_whitespace().find(|w| w.starts_with("0x") && w.len() == 42).unwrap_or_else(|| panic!("no address for {name}: {out}")).to_string()
    };
    let (alice, bob, carol) = (address("alice"), address("bob"), address("carol"));
    let l1_balance = |l1: &mut RpcClient, who: &str| quantity(&l1.call("eth_getBalance", json!([who, "latest"])).unwrap());

    // Deposit, credited on TCP.
    let deposit = run(&["bridge", "deposit", "--from", "alice", "--amount", &(2 * ETH).to_string(), "--wait"]);
    assert_eq!(deposit["bridged_balance"], (2 * ETH).to_string(), "{deposit}");
    // Transfer and withdraw on TCP.
    run(&["bridge", "transfer", "--from", "alice", "--to", &bob, "--amount", &(ETH / 2).to_string()]);
    let withdrawn = run(&["bridge", "withdraw", "--from", "alice", "--amount", &(ETH / 2).to_string()]);
    let record = withdrawn["withdrawal"].as_u64().expect("a record id");
    // Exit it (the checkpoint relayed first if the contract's is older).
    let exit = run(&["bridge", "exit", "--from", "alice", "--withdrawal", &record.to_string()]);
    assert!(exit["checkpoint_height"].as_u64().unwrap() >= withdrawn["receipt"]["block_height"].as_u64().unwrap());

    // Bob cheats: exits his whole balance, then spends it on TCP before the lock.
    run(&["bridge", "exit", "--from", "bob", "--account"]);
    run(&["bridge", "transfer", "--from", "bob", "--to", &carol, "--amount", &(ETH / 10).to_string()]);
    // The validators' watcher challenges it by itself: the exit is cancelled and TCP unlocks bob.
    wait_for("the watcher's challenge of bob's exit", Duration::from_secs(60), || {
        let status = run(&["bridge", "status", "--account", &bob]);
        (status["root"]["inbox_count"].as_u64()? >= 3 && status["tcp"]["account"]["locked"] == false && status["tcp"]["inbox_processed"].as_u64()? >= 3).then_some(())
    });

    // The challenge period passes; alice's exit pays her the withdrawal and her bond.
    let before = l1_balance(&mut l1, &alice);
    let status = run(&["bridge", "status"]);
    let period = status["tcp"]["params"]["challenge_period_secs"].as_u64().unwrap();
    let bond: u128 = status["tcp"]["params"]["exit_bond"].as_str().unwrap().parse().unwrap();
    l1.call("evm_increaseTime", json!([period])).unwrap();
    l1.call("evm_mine", json!([])).unwrap();
    let collected = run(&["bridge", "finalize", "--from", "alice"]);
    assert_eq!(collected["collected"], (ETH / 2 + bond).to_string(), "{collected}");
    let after = l1_balance(&mut l1, &alice);
    assert!(after > before + ETH / 2 && after <= before + ETH / 2 + bond, "alice's root-chain balance {before} → {after}");
    let status = run(&["bridge", "status", "--account", &alice]);
    assert_eq!(status["tcp"]["account"]["bridged_balance"], (ETH).to_string(), "alice keeps 2 − 0.5 − 0.5 bridged: {status}");

    // Alice saves her proof; then the validators stop for good.
    let saved = dir.join("alice-proof.json");
    run(&["bridge", "save-proof", "--from", "alice", "--out", saved.to_str().unwrap()]);
    let contract = status["tcp"]["contract"].as_str().unwrap().to_string();
    drop(devnet);
    let freeze = run_offline(&["bridge", "status"], &rpc, &root_rpc, home);
    assert!(freeze.is_none(), "the TCP node is gone");
    l1.call("evm_increaseTime", json!([3600 + 1])).unwrap();
    l1.call("evm_mine", json!([])).unwrap();
    // The escape hatch: her whole balance from the last checkpoint, with no TCP node.
    let (code, out, err) = tcpchain(&["bridge", "exit", "--from", "alice", "--proof", saved.to_str().unwrap(), "--root-rpc", &root_rpc, "--home", home, "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    l1.call("evm_increaseTime", json!([period])).unwrap();
    l1.call("evm_mine", json!([])).unwrap();
    let before = l1_balance(&mut l1, &alice);
    let (code, out, err) = tcpchain(&["bridge", "finalize", "--from", "alice", "--contract", &contract, "--root-rpc", &root_rpc, "--home", home, "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let collected: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(collected["collected"], (ETH + bond).to_string(), "{out}");
    assert!(l1_balance(&mut l1, &alice) > before + ETH);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CLI call that needs the TCP node: `None` when it fails (the node is gone).
fn run_offline(args: &[&str], rpc: &str, root_rpc: &str, home: &str) -> Option<Value> {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--rpc", rpc, "--root-rpc", root_rpc, "--home", home, "--json"]);
    let (code, out, _) = tcpchain(&all);
    (code == 0).then(|| serde_json::from_str(&out).ok()).flatten()
}
