//! The bridge over Ethereum JSON-RPC, on both root chains TCP runs with: a real Ethereum node
//! (anvil, npm `@foundry-rs/anvil`, installed by `scripts/install-anvil.sh`) and the devnet's
//! embedded chain served over JSON-RPC. The same scenario on each, through `JsonRpcRootChain`
//! with signed transactions: deploy, a deposit read back from the logs at the confirmation
//! depth, a refused deposit that costs nothing, a checkpoint, a withdrawal exit through the
//! challenge period and the payout. The anvil run is skipped, saying so, only where npm cannot
//! install anvil.

#[allow(dead_code)]
#[path = "plasma/world.rs"]
mod world;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tcp_bridge::jsonrpc::JsonRpcRootChain;
use tcp_bridge::plasma;
use tcp_bridge::rootchain::{RootChain, confirmed_inbox};
use tcp_node::client::RpcClient;
use tcp_state::bridge::{bridge_status_key, withdrawal_key};
use tcp_state::{AccountState, Action, Address, BlockEnv, StakingParams, StateConfig, Transaction};
use tcp_types::ChainId;
use world::{ETH, Group, params, user};

struct Anvil(Child);

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_anvil() -> Option<(Anvil, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("bash").arg(root.join("scripts/install-anvil.sh")).output().expect("bash runs");
    if !out.status.success() {
        println!("SKIPPED: anvil could not be installed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let bin = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(bin)
        .args(["--port", &port.to_string(), "--hardfork", "prague", "--silent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("anvil starts");
    let anvil = Anvil(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while RpcClient::new(&url).unwrap().call("eth_chainId", serde_json::json!([])).is_err() {
        assert!(Instant::now() < deadline, "anvil did not answer within 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((anvil, url))
}

fn tcp_send(state: &mut AccountState, height: &mut u64, key: &tcp_state::AccountKey, action: Action) {
    *height += 1;
    let chain = ChainId::new(world::CHAIN).unwrap();
    let nonce = state.account(&key.address()).nonce;
    let tx = Transaction { chain_id: chain.clone(), nonce, gas_price: 0, gas_limit: 100_000, action }.sign(key).verify(&chain).unwrap();
    state.apply_transaction(&tx, &BlockEnv { height: *height, time_secs: 0, fee_recipient: Address([0xee; 20]) }).unwrap();
}

fn checkpoint(chain: &mut JsonRpcRootChain, relayer: &tcp_state::AccountKey, root: [u8; 20], group: &Group, state: &mut AccountState, height: &mut u64) -> (u64, AccountState, u64) {
    *height += 1;
    let state_root = state.state_root();
    let (header, round, signature) = group.header(world::CHAIN, *height, state_root, 0);
    let (_, proof) = state.prove_committed(&bridge_status_key());
    let calldata = plasma::submit_checkpoint(&header, round, &signature, proof.value().unwrap(), &proof.siblings);
    let sent = chain.send(relayer, root, 0, &calldata).unwrap_or_else(|e| panic!("checkpoint {height}: {e}"));
    (*height, state.clone(), sent.gas_used)
}

#[test]
fn deposit_checkpoint_withdraw_and_exit_on_anvil() {
    let Some((_anvil, url)) = start_anvil() else { return };
    scenario(&url);
}

#[test]
fn deposit_checkpoint_withdraw_and_exit_on_the_embedded_chain_over_json_rpc() {
    let node = tcp_bridge::embedded_rpc::spawn();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async move { tcp_bridge::embedded_rpc::serve(tokio::net::TcpListener::from_std(listener).unwrap(), node).await }).unwrap();
    });
    scenario(&url);
}

fn scenario(url: &str) {
    let url = url.to_string();
    let mut chain = JsonRpcRootChain::connect(&url).unwrap();
    let chain_id = chain.chain_id().unwrap();
    let (alice, relayer) = (user(0), user(3));
    let mut rpc = RpcClient::new(&url).unwrap();
    for key in [&alice, &relayer] {
        rpc.call("anvil_setBalance", serde_json::json!([format!("0x{}", tcp_types::hex::encode(&key.address().0)), "0x3635C9ADC5DEA00000"])).unwrap();
    }
    let group = Group::new(7);
    let creation = plasma::plasma_root_creation(&tcp_bridge::plasma_root().bytecode, world::CHAIN, &group.key(), &params());
    let root = chain.deploy(&relayer, &creation).unwrap();

    // A deposit below the minimum: refused before it is sent, with the contract's reason.
    let before = chain.balance(alice.address().0).unwrap();
    let refused = chain.send(&alice, root, 1, &plasma::deposit(&alice.address())).unwrap_err();
    assert_eq!(refused.error_name(), Some("BadDeposit"), "{refused}");
    assert_eq!(chain.balance(alice.address().0).unwrap(), before, "nothing was sent, no gas spent");
    let deposit = chain.send(&alice, root, 2 * ETH, &plasma::deposit(&alice.address())).unwrap();

    // TCP reads it from the logs and credits it.
    let config = StateConfig { chain_id: ChainId::new(world::CHAIN).unwrap(), min_gas_price: 0, staking: StakingParams::default(), enclaves: None };
    let mut state = AccountState::genesis(config, &[(alice.address(), ETH)]).unwrap();
    state.enable_bridge(chain_id, root);
    let (entries, next) = confirmed_inbox(&mut chain, root, 0, 0).unwrap();
    assert_eq!((entries.len(), entries[0].entry.amount, next), (1, 2 * ETH, chain.block_number().unwrap() + 1));
    assert!(deposit.block < next);
    assert_eq!(entries[0].chain_hash, entries[0].entry.chain(&[0; 32]), "the log's running hash is the one TCP computes");
    state.apply_inbox(&entries.iter().map(|e| e.entry).collect::<Vec<_>>()).unwrap();
    let mut height = 0;
    tcp_send(&mut state, &mut height, &alice, Action::Withdraw { recipient: alice.address().0, amount: ETH });
    let (at, snapshot, checkpoint_gas) = checkpoint(&mut chain, &relayer, root, &group, &mut state, &mut height);
    println!("over JSON-RPC at {url}: deposit {} gas, checkpoint {checkpoint_gas} gas", deposit.gas_used);

    // The withdrawal exits through the challenge period and is paid.
    let (_, proof) = snapshot.prove_committed(&withdrawal_key(0));
    let exit = plasma::start_withdrawal_exit(at, 0, proof.value().unwrap(), &proof.siblings);
    chain.send(&alice, root, params().exit_bond, &exit).unwrap();
    let early = chain.send(&relayer, root, 0, &plasma::finalize_exits(10)).unwrap();
    assert!(early.gas_used > 0);
    assert_eq!(chain.call(alice.address().0, root, 0, &plasma::withdraw()).unwrap_err().error_name(), Some("NothingToWithdraw"));
    rpc.call("evm_increaseTime", serde_json::json!([params().challenge_period])).unwrap();
    rpc.call("evm_mine", serde_json::json!([])).unwrap();
    chain.send(&relayer, root, 0, &plasma::finalize_exits(10)).unwrap();
    let before = chain.balance(alice.address().0).unwrap();
    let pulled = chain.send(&alice, root, 0, &plasma::withdraw()).unwrap();
    let gas_price = u128::from_str_radix(rpc.call("eth_gasPrice", serde_json::json!([])).unwrap().as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let after = chain.balance(alice.address().0).unwrap();
    // What she received, give or take the gas of the pull (anvil's price moves a little).
    let received = after + u128::from(pulled.gas_used) * gas_price - before;
    assert!(received.abs_diff(ETH + params().exit_bond) <= u128::from(pulled.gas_used) * gas_price, "received {received}");
    assert_eq!(chain.balance(root).unwrap(), ETH, "the contract holds what TCP still owes");
}
