//! The compute role on a real network (issue 19, item 1): `tcpchain node` with `"role":
//! "compute"` follows the chain, starts its enclave, bonds its operator, posts the platform's
//! collateral and registers the enclave (a simulated SGX quote verified by every validator at
//! the block's time). When the enclave process is killed its host restarts it, and the node
//! registers the new process's keys. The node stops cleanly on SIGTERM, and a compute config
//! that does not hold together is refused at start with its reason.

mod common;
use common::*;

use serde_json::{Value, json};
use std::time::Duration;
use tcp_node::client::RpcClient;

fn enclaves(rpc: &str) -> Option<Vec<Value>> {
    let nodes = RpcClient::new(rpc).ok()?.call("compute_nodes", json!([])).ok()?;
    let node = nodes["compute_nodes"].as_array()?.first()?.clone();
    Some(node["enclaves"].as_array()?.iter().filter(|e| e["current"] == true).cloned().collect())
}

/// The pids of the enclave processes a compute home runs (their command line names its
/// development platform file).
fn enclave_pids(home: &std::path::Path) -> Vec<i32> {
    let platform = home.join("dev-platform.json");
    let needle = platform.to_str().unwrap().as_bytes().to_vec();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let contains = |part: &[u8]| cmdline.windows(part.len()).any(|w| w == part);
            contains(&needle) && contains(b"--quote-backend")
        })
        .collect()
}

#[test]
fn a_compute_node_registers_its_enclave_and_registers_it_again_after_the_enclave_crashes() {
    let dir = std::env::temp_dir().join(format!("tcp-compute-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let base_port = free_base_port(6);
    init(&dir, base_port, &["--compute-nodes", "1"]);
    let mut net = net(&dir, base_port);
    let home = dir.join("compute-0");
    net.homes.push(home.clone());
    net.rpc.push(format!("http://127.0.0.1:{}", base_port + 51));
    net.children.push(None);

    // A compute section on a full node, and the compute role without one, are refused with
    // their reason before anything starts.
    let config_path = home.join("config.json");
    let good = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, good.replace("\"role\": \"compute\"", "\"role\": \"full\"")).unwrap();
    let (code, _, err) = tcpchain(&["node", "--home", home.to_str().unwrap()]);
    assert!(code != 0 && err.contains("needs \"role\": \"compute\""), "{err}");
    std::fs::write(&config_path, good.replace("\"bond\": \"100000\"", "\"bond\": \"lots\"")).unwrap();
    let (code, _, err) = tcpchain(&["node", "--home", home.to_str().unwrap()]);
    assert!(code != 0 && err.contains("compute.bond"), "{err}");
    std::fs::write(&config_path, &good).unwrap();

    for i in 0..6 {
        net.spawn(i);
    }
    net.wait_height(&[0, 5], 2, Duration::from_secs(60));
    let first = wait_for("the compute node's enclave to be registered", Duration::from_secs(90), || {
        enclaves(&net.rpc[0]).and_then(|e| e.first().cloned())
    });
    let genesis: Value = serde_json::from_slice(&std::fs::read(dir.join("genesis.json")).unwrap()).unwrap();
    let allowed: Vec<&str> = genesis["attestation"]["measurements"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert!(allowed.contains(&first["measurement"].as_str().unwrap()), "{first}");
    assert_eq!((first["tee"].as_str(), first["tcb_status"].as_str(), first["debug"].as_bool()), (Some("sgx"), Some("UpToDate"), Some(false)));
    // Every node holds the same registry (the registration is in the state root).
    assert_eq!(enclaves(&net.rpc[5]).map(|e| e.len()), Some(1));

    // The enclave dies: its host starts a new process (new keys), which the node registers.
    let pids = enclave_pids(&home);
    assert_eq!(pids.len(), 1, "one enclave process runs for the compute node");
    unsafe { libc::kill(pids[0], libc::SIGKILL) };
    let renewed = wait_for("the restarted enclave's registration", Duration::from_secs(90), || {
        enclaves(&net.rpc[0]).and_then(|e| e.into_iter().find(|e| e["signing_key"] != first["signing_key"]))
    });
    assert_eq!(renewed["measurement"], first["measurement"]);
    let now = enclave_pids(&home);
    assert!(now.len() == 1 && now[0] != pids[0], "{now:?}");

    // SIGTERM stops the node, its compute service and its enclave cleanly.
    net.sigterm(5);
    wait_for("the enclave to exit with its node", Duration::from_secs(10), || enclave_pids(&home).is_empty().then_some(()));
}
