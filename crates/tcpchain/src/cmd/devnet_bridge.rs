//! `tcpchain devnet --bridge embedded|URL` (docs/bridge.md): a root chain for the devnet (the
//! embedded one, served over JSON-RPC by a child process, or any Ethereum node such as anvil),
//! `PlasmaRoot` deployed on it for the chain's group key, and the bridge's part of the demo:
//! a deposit credited on TCP, a transfer, a withdrawal, the checkpoint that covers it, its
//! exit through the challenge period, and the payout.

use super::bridge::{bridged_balance, finalize_and_collect, start_exit, wait_until};
use super::client::{SendOptions, send_action};
use super::init::{BridgeInit, RELAYER_KEY};
use anyhow::{Context as _, bail};
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tcp_bridge::jsonrpc::JsonRpcRootChain;
use tcp_bridge::plasma::{self, BridgeParams, IPlasmaRoot};
use tcp_bridge::rootchain::RootChain;
use tcp_bridge::service::view_u64;
use tcp_node::KeyStore;
use tcp_node::client::RpcClient;
use tcp_state::Action;

/// The port offset (of node 0's ports) of the embedded root chain.
pub const ROOT_CHAIN_PORT_OFFSET: u16 = 8;
/// The key, in the devnet's key store, that deploys `PlasmaRoot`.
const DEPLOYER_KEY: &str = "bridge-deployer";
/// What every devnet account gets on the root chain.
const ROOT_FUNDS: u128 = 100 * ETH;
const ETH: u128 = 1_000_000_000_000_000_000;

/// A devnet's exit game: ten minutes of challenges, an hour to freeze (of the root chain's
/// clock, which moves 12 s a block), a 0.01 ETH bond, entries processed as soon as they are
/// mined (a devnet's root chain does not reorganise).
pub fn devnet_params() -> BridgeParams {
    BridgeParams { challenge_period: 600, freeze_period: 3600, exit_bond: ETH / 100, min_deposit: 1_000_000_000, confirmation_depth: 0 }
}

/// The root chain the devnet uses: its URL, and the process serving it when it is embedded.
pub struct RootChainProcess {
    pub url: String,
    pub child: Option<Child>,
}

/// Start the embedded root chain (`tcpchain bridge root-chain`) or take `spec` as a node's URL.
pub fn start_root_chain(spec: &str, dir: &Path, base_port: u16) -> anyhow::Result<RootChainProcess> {
    let (url, child) = if spec == "embedded" {
        let port = base_port.checked_add(ROOT_CHAIN_PORT_OFFSET).context("--base-port too high for the root chain's port")?;
        let listen = format!("127.0.0.1:{port}");
        std::fs::create_dir_all(dir)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("root-chain.log"))?;
        let child = Command::new(std::env::current_exe().context("locating the tcpchain binary")?)
            .args(["bridge", "root-chain", "--listen", &listen])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the embedded root chain")?;
        (format!("http://{listen}"), Some(child))
    } else if spec.starts_with("http://") {
        (spec.to_string(), None)
    } else {
        bail!("--bridge takes `embedded` or the http:// URL of an Ethereum node (anvil, geth)");
    };
    let mut process = RootChainProcess { url, child };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match JsonRpcRootChain::connect(&process.url).and_then(|mut c| c.chain_id()) {
            Ok(_) => return Ok(process),
            Err(e) if Instant::now() > deadline => {
                process.stop();
                bail!("the root chain at {} did not answer: {e}", process.url);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

impl RootChainProcess {
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn set_balance(url: &str, account: [u8; 20], wei: u128) -> anyhow::Result<()> {
    RpcClient::new(url)?
        .call("anvil_setBalance", json!([format!("0x{}", tcp_types::hex::encode(&account)), format!("0x{wei:x}")]))
        .context("funding an account on the root chain (anvil_setBalance: the devnet's root chain must be the embedded one or anvil)")?;
    Ok(())
}

/// Before `init`: the deployer funded, and where its contract will be.
pub fn plan(root: &RootChainProcess, dir: &Path) -> anyhow::Result<BridgeInit> {
    let store = KeyStore::open(dir)?;
    let deployer = match store.load(DEPLOYER_KEY) {
        Ok(key) => key,
        Err(_) => {
            store.generate(DEPLOYER_KEY)?;
            store.load(DEPLOYER_KEY)?
        }
    };
    set_balance(&root.url, deployer.address().0, ROOT_FUNDS)?;
    let mut chain = JsonRpcRootChain::connect(&root.url)?;
    let nonce = RpcClient::new(&root.url)?.call("eth_getTransactionCount", json!([deployer.address().to_string(), "pending"]))?;
    let nonce = u64::from_str_radix(nonce.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16).context("the deployer's nonce")?;
    Ok(BridgeInit {
        root_rpc: root.url.clone(),
        root_chain_id: chain.chain_id()?,
        contract: tcp_bridge::tx::create_address(deployer.address().0, nonce),
        params: devnet_params(),
        relay_every: 5,
    })
}

/// After `init`: `PlasmaRoot` deployed for the genesis's group key (at the planned address),
/// and the devnet's accounts and the relayer funded on the root chain.
pub fn deploy(plan: &BridgeInit, dir: &Path) -> anyhow::Result<()> {
    let spec = tcp_node::genesis::ChainSpec::load(&dir.join("genesis.json"))?;
    let group_key = spec.bootstrap_group_key().map_err(|e| anyhow::anyhow!("{e}"))?;
    let creation = plasma::plasma_root_creation(&tcp_bridge::plasma_root().bytecode, spec.chain_id.as_str(), &tcp_bridge::calldata::group_key_point(&group_key), &plan.params);
    let store = KeyStore::open(dir)?;
    let deployer = store.load(DEPLOYER_KEY)?;
    let mut chain = JsonRpcRootChain::connect(&plan.root_rpc)?;
    let address = chain.deploy(&deployer, &creation).context("deploying PlasmaRoot")?;
    if address != plan.contract {
        bail!("PlasmaRoot landed at 0x{}, not at the 0x{} the genesis names", tcp_types::hex::encode(&address), tcp_types::hex::encode(&plan.contract));
    }
    for name in ["alice", "bob", "carol"] {
        if let Ok(info) = store.show(name) {
            set_balance(&plan.root_rpc, info.address.0, ROOT_FUNDS)?;
        }
    }
    let relayer = KeyStore::open(&dir.join("validator-0"))?.show(RELAYER_KEY)?;
    set_balance(&plan.root_rpc, relayer.address.0, ROOT_FUNDS)?;
    Ok(())
}

fn eth(wei: u128) -> String {
    format!("{}.{:04} ETH", wei / ETH, (wei % ETH) / (ETH / 10_000))
}

/// The bridge's part of the demo, through the first node and the root chain.
pub fn demo(dir: &Path, rpc: &str, root_rpc: &str) -> anyhow::Result<()> {
    let store = KeyStore::open(dir)?;
    let (alice, bob) = (store.load("alice")?, store.show("bob")?.address);
    let mut tcp = RpcClient::new(rpc)?;
    let bridge = tcp.call("bridge", json!([]))?;
    let contract: [u8; 20] = bridge["contract"].as_str().unwrap_or_default().parse::<tcp_state::Address>().map_err(|e| anyhow::anyhow!("{e}"))?.0;
    let mut root = JsonRpcRootChain::connect(root_rpc)?;
    println!("bridge: PlasmaRoot at {} on root chain {} ({root_rpc})", bridge["contract"].as_str().unwrap_or(""), bridge["root_chain_id"]);

    // Deposit.
    let before = bridged_balance(&mut tcp, &alice.address())?;
    let deposit = root.send(&alice, contract, ETH, &plasma::deposit(&alice.address())).context("the demo's deposit")?;
    println!("bridge: alice deposits {} on the root chain (block {}, {} gas)", eth(ETH), deposit.block, deposit.gas_used);
    wait_until("TCP crediting alice's deposit", Duration::from_secs(60), || Ok(bridged_balance(&mut tcp, &alice.address())? >= before + ETH))?;
    let height = tcp.call("bridge", json!([]))?["height"].clone();
    println!("bridge: credited on TCP by block {height}: alice holds {} bridged", eth(bridged_balance(&mut tcp, &alice.address())?));

    // A transfer and a withdrawal on TCP.
    let chain_id = tcp_types::ChainId::new(tcp.call("status", json!([]))?["chain_id"].as_str().unwrap_or_default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let options = || SendOptions { nonce: None, gas_price: 1, gas_limit: None, wait: true };
    let sent = send_action(&mut tcp, &alice, chain_id.clone(), Action::BridgeTransfer { to: bob, amount: ETH / 4 }, "bridge-transfer", options())?;
    println!("bridge: alice → bob {} bridged on TCP (block {})", eth(ETH / 4), sent["receipt"]["block_height"]);
    let record = tcp.call("bridge", json!([]))?["next_withdrawal"].as_u64().unwrap_or(0);
    let sent = send_action(&mut tcp, &alice, chain_id, Action::Withdraw { recipient: alice.address().0, amount: ETH / 2 }, "withdraw", options())?;
    let withdrawn_at = sent["receipt"]["block_height"].as_u64().unwrap_or(0);
    println!("bridge: alice withdraws {} to her root-chain address: record {record} burned in block {withdrawn_at}", eth(ETH / 2));

    // The relayer's checkpoint covers it.
    let withdrawn = Instant::now();
    wait_until("a checkpoint covering the withdrawal (validator 0 relays every 5 blocks)", Duration::from_secs(60), || {
        Ok(view_u64(&mut root, contract, IPlasmaRoot::latestHeightCall {})? >= withdrawn_at)
    })?;
    let checkpoint = view_u64(&mut root, contract, IPlasmaRoot::latestHeightCall {})?;
    println!(
        "bridge: checkpoint {checkpoint} relayed to the contract (header and φ verified on the root chain), {:.1} s after the withdrawal committed",
        withdrawn.elapsed().as_secs_f64()
    );

    // Exit, the challenge period, payout.
    let exit = start_exit(&mut tcp, &mut root, &alice, contract, Some(record))?;
    println!("bridge: alice starts the exit of {} from checkpoint {} ({} gas, bond {} wei)", exit["exit_of"].as_str().unwrap_or(""), exit["checkpoint_height"], exit["gas_used"], exit["bond"].as_str().unwrap_or(""));
    let period = view_u64(&mut root, contract, IPlasmaRoot::challengePeriodCall {})?;
    let mut rpc_root = RpcClient::new(root_rpc)?;
    rpc_root.call("evm_increaseTime", json!([period])).context("moving the root chain's clock (the devnet's root chain must be the embedded one or anvil)")?;
    rpc_root.call("evm_mine", json!([]))?;
    println!("bridge: the {period} s challenge period passes on the root chain (its clock moved on); nobody challenged");
    let before = root.balance(alice.address().0)?;
    let collected = finalize_and_collect(&mut root, &alice, contract, 100)?;
    let after = root.balance(alice.address().0)?;
    println!("bridge: finalized; alice collects {} (the withdrawal and her bond); her root-chain balance {} → {}", eth(collected), eth(before), eth(after));
    println!(
        "bridge: TCP holds alice {} and bob {} bridged; the contract holds {} (tcpchain bridge status --rpc {rpc} --root-rpc {root_rpc})",
        eth(bridged_balance(&mut tcp, &alice.address())?),
        eth(bridged_balance(&mut tcp, &bob)?),
        eth(root.balance(contract)?)
    );
    Ok(())
}
