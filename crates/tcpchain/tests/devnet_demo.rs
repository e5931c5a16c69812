//! README command 1 as a newcomer runs it (issue 20, item 8), bridged to the embedded root chain
//! as issue 21's command runs it: `tcpchain devnet --bridge embedded --demo --exit-after-demo`
//! starts validators, two compute nodes, a data source and the root chain, and tells the
//! confidential-contract story with the blocks each step committed in, then the bridge's. Each
//! claim the story makes is checked here: the bank's result verified against the chain, each
//! owner paid their price, the racing request refused as stale, the replayed request refused;
//! the deposit credited, the withdrawal checkpointed, exited and paid.

mod common;
use common::*;

#[test]
fn the_devnet_demo_tells_the_whole_confidential_contract_story_and_exits_0() {
    let dir = std::env::temp_dir().join(format!("tcp-demo-{}", std::process::id()));
    let base_port = free_base_port(6).to_string();
    let (code, out, err) =
        tcpchain(&["devnet", "--validators", "4", "--bridge", "embedded", "--dir", dir.to_str().unwrap(), "--reset", "--demo", "--exit-after-demo", "--base-port", &base_port]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{out}\n{err}");
    for expected in [
        "alice (a bank) deployed credit scoring",
        "bob sealed 3 applicant records",
        "carol sealed 2 applicant records",
        "alice scored the 5 applicants",
        "applicant 1 (bob's record): score 0.84 → approved",
        "applicant 5 (carol's record): score 0.03 → declined",
        "result verified against the chain",
        "bob was paid 10 for this use",
        "carol was paid 15 for this use",
        "the other was refused: compute transaction refused: stale:",
        "sent again to the other compute node: refused (the request was committed already)",
        "bridge: alice deposits 1.0000 ETH on the root chain",
        "alice holds 1.0000 ETH bridged",
        "bridge: alice → bob 0.2500 ETH bridged on TCP",
        "bridge: alice withdraws 0.5000 ETH to her root-chain address: record 0",
        "relayed to the contract (header and φ verified on the root chain)",
        "bridge: alice starts the exit of withdrawal 0",
        "alice collects 0.5100 ETH (the withdrawal and her bond)",
        "TCP holds alice 0.2500 ETH and bob 0.2500 ETH bridged; the contract holds 0.5000 ETH",
        "network stopped",
    ] {
        assert!(out.contains(expected), "the demo did not say {expected:?}:\n{out}\n{err}");
    }
    // Steps on chain name their block.
    assert!(out.lines().filter(|l| l.starts_with("demo: [block ")).count() >= 3, "{out}");
}
