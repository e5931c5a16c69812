//! `tcpchain bridge …`: the Plasma bridge from a user's side (docs/bridge.md) — deposit on the
//! root chain, withdraw on TCP, exit (a withdrawal record or an account's balance) with the
//! proof of a checkpoint (relayed first if the contract has none that new), challenge, finalize
//! and collect, status; and `bridge root-chain`, the embedded root chain served over JSON-RPC
//! for devnets. The root chain is reached through `--root-rpc` (any Ethereum JSON-RPC endpoint).

use super::client::{SendOptions, home_dir, send_action};
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tcp_bridge::jsonrpc::JsonRpcRootChain;
use tcp_bridge::plasma::{self, IPlasmaRoot};
use tcp_bridge::rootchain::RootChain;
use tcp_bridge::service::{Challenge, ensure_checkpoint, proof_parts, view_u64};
use tcp_node::KeyStore;
use tcp_node::client::RpcClient;
use tcp_state::{Action, Address};

const DEFAULT_RPC: &str = "http://127.0.0.1:26657";
const DEFAULT_ROOT_RPC: &str = "http://127.0.0.1:8545";

#[derive(Args, Clone, Debug)]
pub struct Chains {
    /// A TCP node's RPC.
    #[arg(long, default_value = DEFAULT_RPC)]
    pub rpc: String,
    /// The root chain's JSON-RPC (default: the one the TCP node names, else
    /// http://127.0.0.1:8545).
    #[arg(long)]
    pub root_rpc: Option<String>,
    #[arg(long, default_value = "~/.tcpchain")]
    pub home: String,
    #[arg(long)]
    pub json: bool,
    /// What the contract's address and root chain are checked against: the bridge status in a
    /// header the light client verifies (a node cannot send your deposit elsewhere).
    #[command(flatten)]
    pub anchor: super::light::AnchorArgs,
}

#[derive(Subcommand, Clone, Debug)]
pub enum BridgeCommand {
    /// Lock ETH on the root chain for a TCP account (yours unless --to); with --wait, until
    /// TCP credits it.
    Deposit {
        #[command(flatten)]
        chains: Chains,
        /// Key name in <home>/keys (the same key on both chains).
        #[arg(long)]
        from: String,
        /// Wei.
        #[arg(long)]
        amount: u128,
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        wait: bool,
    },
    /// Burn bridged ETH on TCP and write a withdrawal record for a root-chain address (yours
    /// unless --recipient); exit it with `bridge exit --withdrawal ID`.
    Withdraw {
        #[command(flatten)]
        chains: Chains,
        #[arg(long)]
        from: String,
        /// Wei.
        #[arg(long)]
        amount: u128,
        #[arg(long)]
        recipient: Option<String>,
    },
    /// Move bridged ETH to another TCP account.
    Transfer {
        #[command(flatten)]
        chains: Chains,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Wei.
        #[arg(long)]
        amount: u128,
    },
    /// Start an exit: a withdrawal record (--withdrawal ID) or your account's whole bridged
    /// balance (--account), proven against the newest checkpoint (relayed first if the
    /// contract's is older than the node's newest finalized height); or, with --proof, from a
    /// proof saved earlier (`bridge save-proof`), which needs no TCP node: the escape hatch
    /// when the chain has stopped.
    Exit {
        #[command(flatten)]
        chains: Chains,
        #[arg(long)]
        from: String,
        #[arg(long, conflicts_with = "account")]
        withdrawal: Option<u64>,
        #[arg(long)]
        account: bool,
        #[arg(long, conflicts_with = "withdrawal")]
        proof: Option<std::path::PathBuf>,
    },
    /// Save what you need to exit your account if TCP stops or withholds data: the proof of
    /// your bridged balance at a checkpoint the contract holds (relayed now if needed).
    SaveProof {
        #[command(flatten)]
        chains: Chains,
        #[arg(long)]
        from: String,
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Challenge an account exit that a newer checkpoint disproves (commit, then reveal a
    /// block later).
    Challenge {
        #[command(flatten)]
        chains: Chains,
        #[arg(long)]
        from: String,
        #[arg(long)]
        exit: u64,
    },
    /// Settle due exits (first in, first out) and collect what the contract owes you.
    Finalize {
        #[command(flatten)]
        chains: Chains,
        #[arg(long)]
        from: String,
        #[arg(long, default_value_t = 100)]
        max: u64,
        /// The contract's address, when no TCP node is there to name it (after a freeze).
        #[arg(long)]
        contract: Option<String>,
        /// First wait, showing progress, until every exit of yours under way is due.
        #[arg(long)]
        wait: bool,
    },
    /// Relay the newest checkpoint now.
    Relay {
        #[command(flatten)]
        chains: Chains,
        #[arg(long)]
        from: String,
    },
    /// The bridge on both chains.
    Status {
        #[command(flatten)]
        chains: Chains,
        /// Also show this account's bridged ETH and what the contract owes it.
        #[arg(long)]
        account: Option<String>,
    },
    /// Serve an embedded root chain (revm, Prague) over JSON-RPC: the devnet's.
    RootChain {
        #[arg(long, default_value = "127.0.0.1:8545")]
        listen: String,
    },
}

fn print(json_out: bool, value: &Value, human: impl FnOnce(&Value) -> String) {
    if json_out {
        println!("{}", serde_json::to_string_pretty(value).expect("serializes"));
    } else {
        println!("{}", human(value));
    }
}

fn address(text: &str) -> anyhow::Result<Address> {
    text.parse().map_err(|e| anyhow::anyhow!("{text:?}: {e}"))
}

/// The contract, from the TCP node's `bridge` answer (genesis fixes it).
fn contract_of(bridge: &Value) -> anyhow::Result<[u8; 20]> {
    Ok(address(bridge["contract"].as_str().context("the node's bridge answer names no contract")?)?.0)
}

fn connect(chains: &Chains) -> anyhow::Result<(RpcClient, JsonRpcRootChain, Value, [u8; 20])> {
    let mut tcp = RpcClient::new(&chains.rpc)?;
    let bridge = tcp.call("bridge", json!([])).context("the node's bridge")?;
    // The contract and root chain as the chain's own state proves them, not the node's word.
    let (light, _) = super::light::trust_anchor(&mut tcp, &chains.anchor)?;
    let status = tcp_client::verified_value(&mut tcp, &light, &bridge["status_proof"], &tcp_state::bridge::bridge_status_key())?
        .and_then(|v| tcp_state::bridge::BridgeStatus::decode(&v))
        .context("the chain proves no bridge status")?;
    let contract = status.contract;
    if contract_of(&bridge)? != contract || bridge["root_chain_id"].as_u64() != Some(status.root_chain_id) {
        bail!("the node's bridge answer is not what the chain's state proves");
    }
    let url = root_rpc_of(chains, &bridge);
    let mut root = JsonRpcRootChain::connect(&url)?;
    let root_id = root.chain_id().with_context(|| format!("reaching the root chain at {url}"))?;
    if Some(root_id) != bridge["root_chain_id"].as_u64() {
        bail!("{url} is root chain {root_id}, but this TCP chain is bridged to root chain {}", bridge["root_chain_id"]);
    }
    Ok((tcp, root, bridge, contract))
}

/// `--root-rpc`, else the root chain the TCP node names, else the local default.
fn root_rpc_of(chains: &Chains, bridge: &Value) -> String {
    chains.root_rpc.clone().or_else(|| bridge["root_rpc"].as_str().map(str::to_string)).unwrap_or_else(|| DEFAULT_ROOT_RPC.to_string())
}

fn key_of(chains: &Chains, name: &str) -> anyhow::Result<tcp_state::AccountKey> {
    Ok(KeyStore::open(&home_dir(&chains.home)?)?.load(name)?)
}

/// Wait for `check` with a line of progress every few seconds.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> anyhow::Result<bool>) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut said = Instant::now();
    while !check()? {
        if start.elapsed() > timeout {
            bail!("{what}: not within {} s", timeout.as_secs());
        }
        if said.elapsed() > Duration::from_secs(3) {
            eprintln!("… waiting: {what} ({} s)", start.elapsed().as_secs());
            said = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

pub fn run(command: BridgeCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        BridgeCommand::RootChain { listen } => serve_root_chain(&listen),
        BridgeCommand::Deposit { chains, from, amount, to, wait } => {
            let key = key_of(&chains, &from)?;
            let recipient = match &to {
                Some(to) => address(to)?,
                None => key.address(),
            };
            let (mut tcp, mut root, _, contract) = connect(&chains)?;
            let before = bridged_balance(&mut tcp, &recipient)?;
            let sent = root.send(&key, contract, amount, &plasma::deposit(&recipient)).context("deposit")?;
            let mut out = json!({"root_tx": format!("0x{}", tcp_types::hex::encode(&sent.hash)), "root_block": sent.block, "gas_used": sent.gas_used,
                                 "recipient": recipient.to_string(), "amount": amount.to_string()});
            if wait {
                wait_until("TCP crediting the deposit (after the confirmation depth)", Duration::from_secs(300), || Ok(bridged_balance(&mut tcp, &recipient)? >= before + amount))?;
                out["credited"] = json!(true);
                out["bridged_balance"] = json!(bridged_balance(&mut tcp, &recipient)?.to_string());
            }
            print(chains.json, &out, |v| format!("deposited {} wei for {} in root block {}{}", v["amount"].as_str().unwrap_or(""), v["recipient"].as_str().unwrap_or(""), v["root_block"],
                if v["credited"] == true { format!("; credited on TCP (bridged balance {})", v["bridged_balance"].as_str().unwrap_or("")) } else { String::new() }));
            Ok(std::process::ExitCode::SUCCESS)
        }
        BridgeCommand::Withdraw { chains, from, amount, recipient } => {
            let key = key_of(&chains, &from)?;
            let recipient = match &recipient {
                Some(r) => address(r)?.0,
                None => key.address().0,
            };
            let mut tcp = RpcClient::new(&chains.rpc)?;
            let before = tcp.call("bridge", json!([]))?;
            let status = tcp.call("status", json!([]))?;
            let chain_id = tcp_types::ChainId::new(status["chain_id"].as_str().unwrap_or_default()).map_err(|e| anyhow::anyhow!("node's chain id: {e}"))?;
            let options = SendOptions { nonce: None, gas_price: 1, gas_limit: None, wait: true };
            let mut out = send_action(&mut tcp, &key, chain_id, Action::Withdraw { recipient, amount }, "withdraw", options)?;
            // Its record is among the ids after those of before (numbered in commit order), in
            // the finalized view once that includes the block (a block later).
            let block = out["receipt"]["block_height"].as_u64().context("the withdrawal's receipt names no block")?;
            wait_until("the withdrawal's block finalized", Duration::from_secs(30), || Ok(tcp.call("bridge", json!([]))?["height"].as_u64().unwrap_or(0) >= block))?;
            let first = before["next_withdrawal"].as_u64().unwrap_or(0);
            let mut id = None;
            let after = tcp.call("bridge", json!([{"withdrawals": (first..first + 16).collect::<Vec<_>>()}]))?;
            for w in after["withdrawals"].as_array().into_iter().flatten() {
                if w["owner"].as_str() == Some(&key.address().to_string()) && w["amount"].as_str() == Some(&amount.to_string()) {
                    id = w["id"].as_u64();
                }
            }
            out["withdrawal"] = json!(id);
            print(chains.json, &out, |v| format!("withdrew {amount} wei: record {} (exit it once a checkpoint covers it: tcpchain bridge exit --withdrawal {})", v["withdrawal"], v["withdrawal"]));
            Ok(std::process::ExitCode::SUCCESS)
        }
        BridgeCommand::Transfer { chains, from, to, amount } => {
            let key = key_of(&chains, &from)?;
            let to = address(&to)?;
            let mut tcp = RpcClient::new(&chains.rpc)?;
            let status = tcp.call("status", json!([]))?;
            let chain_id = tcp_types::ChainId::new(status["chain_id"].as_str().unwrap_or_default()).map_err(|e| anyhow::anyhow!("node's chain id: {e}"))?;
            let options = SendOptions { nonce: None, gas_price: 1, gas_limit: None, wait: true };
            let out = send_action(&mut tcp, &key, chain_id, Action::BridgeTransfer { to, amount }, "bridge-transfer", options)?;
            print(chains.json, &out, |v| format!("moved {amount} wei of bridged ETH to {to} (block {})", v["receipt"]["block_height"]));
            Ok(std::process::ExitCode::SUCCESS)
        }
        BridgeCommand::SaveProof { chains, from, out } => {
            let key = key_of(&chains, &from)?;
            let (mut tcp, mut root, verified, contract) = connect(&chains)?;
            let bridge = tcp.call("bridge", json!([{"accounts": [key.address().to_string()]}]))?;
            if contract_of(&bridge)? != contract || bridge["root_chain_id"] != verified["root_chain_id"] {
                bail!("the node's bridge answers disagree with each other: not saving");
            }
            let height = bridge["height"].as_u64().context("bridge: no height")?;
            ensure_checkpoint(&mut tcp, &mut root, &key, contract, height, &bridge["status_proof"])?;
            let account = &bridge["accounts"][0];
            // The contract and root chain as the light client proved them (`connect`).
            let saved = json!({"contract": format!("0x{}", tcp_types::hex::encode(&contract)), "root_chain_id": verified["root_chain_id"],
                               "root_rpc": root_rpc_of(&chains, &verified), "height": height, "account": account});
            write_private(&out, &serde_json::to_vec_pretty(&saved)?)?;
            print(chains.json, &saved, |_| {
                format!("saved the proof of {} ({} wei bridged) at checkpoint {height} to {}", key.address(), account["balance"].as_str().unwrap_or("0"), out.display())
            });
            Ok(std::process::ExitCode::SUCCESS)
        }
        BridgeCommand::Exit { chains, from, withdrawal: None, account: _, proof: Some(path) } => {
            // The escape hatch: no TCP node needed.
            let key = key_of(&chains, &from)?;
            let saved: Value = serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)
                .with_context(|| format!("{} is not a saved proof", path.display()))?;
            let contract = contract_of(&saved)?;
            let height = saved["height"].as_u64().context("the saved proof names no height")?;
            let (leaf, siblings) = proof_parts(&saved["account"]["proof"])?;
            if saved["account"]["address"].as_str() != Some(&key.address().to_string()) {
                bail!("{} is a proof of {}, not of {}", path.display(), saved["account"]["address"], key.address());
            }
            let mut root = JsonRpcRootChain::connect(&root_rpc_of(&chains, &saved))?;
            if Some(root.chain_id()?) != saved["root_chain_id"].as_u64() {
                bail!("the root chain at {} is not the one {} names ({})", root.url(), path.display(), saved["root_chain_id"]);
            }
            let bond = view_u128(&mut root, contract, IPlasmaRoot::exitBondCall {})?;
            let sent = root.send(&key, contract, bond, &plasma::start_account_exit(height, &leaf, &siblings)).context("starting the exit")?;
            let out = json!({"exit_of": format!("account {} ({} wei)", key.address(), saved["account"]["balance"].as_str().unwrap_or("")), "checkpoint_height": height,
                             "root_block": sent.block, "gas_used": sent.gas_used, "bond": bond.to_string(),
                             "challenge_period_secs": view_u64(&mut root, contract, IPlasmaRoot::challengePeriodCall {})?});
            print(chains.json, &out, |v| format!("exit of {} started from saved checkpoint {height}; finalize after {} s", v["exit_of"].as_str().unwrap_or(""), v["challenge_period_secs"]));
            Ok(std::process::ExitCode::SUCCESS)
        }
        BridgeCommand::Exit { chains, from, withdrawal, account, proof: _ } => {
            if withdrawal.is_none() && !account {
                bail!("name what to exit: --withdrawal ID, --account, or --proof FILE");
            }
            let key = key_of(&chains, &from)?;
            let (mut tcp, mut root, _, contract) = connect(&chains)?;
            let out = start_exit(&mut tcp, &mut root, &key, contract, withdrawal)?;
            print(chains.json, &out, |v| {
                format!(
                    "exit of {} started from checkpoint {}; finalize after {} s: tcpchain bridge finalize --from {from}",
                    v["exit_of"].as_str().unwrap_or(""),
                    v["checkpoint_height"],
                    v["challenge_period_secs"]
                )
            });
            Ok(std::process::ExitCode::SUCCESS)
        }
        BridgeCommand::Challenge { chains, from, exit } => {
            let key = key_of(&chains, &from)?;
            let (mut tcp, mut root, _, contract) = connect(&chains)?;
            let out = match tcp_bridge::service::challenge_exit(&mut tcp, &mut root, &key, contract, exit)? {
                Challenge::Sent { owner, height, block } => json!({"exit": exit, "owner": owner, "checkpoint_height": height, "root_block": block}),
                Challenge::NotDisproved { spends_then, spends_now } => bail!("exit {exit} is not disproved: its account spent {spends_now} times, as at its checkpoint ({spends_then})"),
                Challenge::NotChallengeable => bail!("exit {exit} is not an account exit under way"),
            };
            print(chains.json, &out, |v| format!("exit {exit} of {} challenged with checkpoint {}: half its bond is yours (collect with bridge finalize)", v["owner"].as_str().unwrap_or(""), v["checkpoint_height"]));
            Ok(std::process::ExitCode::SUCCESS)
        }
        BridgeCommand::Finalize { chains, from, max, contract, wait } => {
            let key = key_of(&chains, &from)?;
            let (mut root, contract) = match contract {
                Some(contract) => (JsonRpcRootChain::connect(&root_rpc_of(&chains, &Value::Null))?, address(&contract)?.0),
                None => {
                    let (_, root, _, contract) = connect(&chains)?;
                    (root, contract)
                }
            };
            if wait {
                let due = latest_due(&mut root, contract, key.address().0)?;
                wait_until("your exits' challenge period (of the root chain's clock)", Duration::from_secs(30 * 24 * 3600), || Ok(root.timestamp()? >= due))?;
            }
            let collected = finalize_and_collect(&mut root, &key, contract, max)?;
            let out = json!({"collected": collected.to_string()});
            print(chains.json, &out, |v| format!("due exits settled; collected {} wei", v["collected"].as_str().unwrap_or("0")));
            Ok(std::process::ExitCode::SUCCESS)
        }
        BridgeCommand::Relay { chains, from } => {
            let key = key_of(&chains, &from)?;
            let (mut tcp, mut root, _, contract) = connect(&chains)?;
            let out = match tcp_bridge::service::relay_checkpoint(&mut tcp, &mut root, &key, contract, 1)? {
                Some((height, sent)) => json!({"relayed": height, "root_block": sent.block, "gas_used": sent.gas_used}),
                None => json!({"relayed": null}),
            };
            print(chains.json, &out, |v| match v["relayed"].as_u64() {
                Some(h) => format!("relayed checkpoint {h} ({} gas)", v["gas_used"]),
                None => "the contract has the newest checkpoint already".into(),
            });
            Ok(std::process::ExitCode::SUCCESS)
        }
        BridgeCommand::Status { chains, account } => {
            let mut tcp = RpcClient::new(&chains.rpc)?;
            let ask = match &account {
                Some(a) => json!([{"accounts": [address(a)?.to_string()]}]),
                None => json!([]),
            };
            let bridge = tcp.call("bridge", ask).context("the node's bridge")?;
            let contract = contract_of(&bridge)?;
            let mut out = json!({"tcp": {
                "height": bridge["height"], "contract": bridge["contract"], "root_chain_id": bridge["root_chain_id"], "params": bridge["params"],
                "inbox_processed": bridge["inbox_processed"], "next_withdrawal": bridge["next_withdrawal"],
            }});
            if let Some(a) = bridge["accounts"].get(0) {
                out["tcp"]["account"] = json!({"address": a["address"], "bridged_balance": a["balance"], "spends": a["spends"], "exits": a["exits"], "locked": a["locked"]});
            }
            match JsonRpcRootChain::connect(&root_rpc_of(&chains, &bridge)).and_then(|mut root| root_status(&mut root, contract, account.as_deref())) {
                Ok(root) => out["root"] = root,
                Err(e) => out["root"] = json!({"error": e.to_string()}),
            }
            print(chains.json, &out, |v| {
                format!(
                    "TCP at {}: inbox processed {}, {} withdrawal record(s); root chain: latest checkpoint {}, inbox {}, exits {} (settled {}), frozen {}",
                    v["tcp"]["height"], v["tcp"]["inbox_processed"], v["tcp"]["next_withdrawal"], v["root"]["latest_checkpoint"], v["root"]["inbox_count"],
                    v["root"]["exits"], v["root"]["exits_settled"], v["root"]["frozen"]
                )
            });
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

/// Start an exit of withdrawal record `withdrawal` (or, `None`, of the key's whole bridged
/// balance), proven against the node's newest finalized height (relaying that checkpoint first
/// if the contract's latest is older).
pub fn start_exit(tcp: &mut RpcClient, root: &mut JsonRpcRootChain, key: &tcp_state::AccountKey, contract: [u8; 20], withdrawal: Option<u64>) -> anyhow::Result<Value> {
    let ask = match withdrawal {
        Some(id) => json!([{"withdrawals": [id]}]),
        None => json!([{"accounts": [key.address().to_string()]}]),
    };
    let bridge = tcp.call("bridge", ask)?;
    let height = bridge["height"].as_u64().context("bridge: no height")?;
    let relayed = ensure_checkpoint(tcp, root, key, contract, height, &bridge["status_proof"])?;
    let bond = view_u128(root, contract, IPlasmaRoot::exitBondCall {})?;
    let (calldata, what) = match withdrawal {
        Some(id) => {
            let w = &bridge["withdrawals"][0];
            if w["amount"].is_null() {
                bail!("withdrawal {id} does not exist at height {height}");
            }
            let (record, siblings) = proof_parts(&w["proof"])?;
            (plasma::start_withdrawal_exit(height, id, &record, &siblings), format!("withdrawal {id} ({} wei)", w["amount"].as_str().unwrap_or("")))
        }
        None => {
            let a = &bridge["accounts"][0];
            let (leaf, siblings) = proof_parts(&a["proof"])?;
            if leaf.is_empty() {
                bail!("{} has no bridged ETH at height {height}", key.address());
            }
            (plasma::start_account_exit(height, &leaf, &siblings), format!("account {} ({} wei)", key.address(), a["balance"].as_str().unwrap_or("")))
        }
    };
    let sent = root.send(key, contract, bond, &calldata).context("starting the exit")?;
    let challenge_period = view_u64(root, contract, IPlasmaRoot::challengePeriodCall {})?;
    let out = json!({"exit_of": what, "checkpoint_height": height, "relayed_checkpoint": relayed, "root_block": sent.block, "gas_used": sent.gas_used,
                     "bond": bond.to_string(), "challenge_period_secs": challenge_period});
    Ok(out)
}

/// When the last of `owner`'s exits under way is due (0: none under way).
fn latest_due(root: &mut JsonRpcRootChain, contract: [u8; 20], owner: [u8; 20]) -> anyhow::Result<u64> {
    let count = view_u64(root, contract, IPlasmaRoot::exitCountCall {})?;
    let mut due = 0;
    for id in view_u64(root, contract, IPlasmaRoot::nextToFinalizeCall {})?..count {
        let call = IPlasmaRoot::exitsCall { id: alloy_sol_types::private::U256::from(id) };
        let raw = root.call([0; 20], contract, 0, &alloy_sol_types::SolCall::abi_encode(&call)).map_err(|e| anyhow::anyhow!("exit {id}: {e}"))?;
        let word = |i: usize| raw.get(i * 32..(i + 1) * 32).context("exits() answer too short");
        if word(1)?[31] == 1 && word(2)?[12..] == owner {
            due = due.max(u64::from_be_bytes(word(4)?[24..].try_into()?));
        }
    }
    Ok(due)
}

/// Settle up to `max` due exits, then pull what the contract owes `key`: the wei collected.
pub fn finalize_and_collect(root: &mut JsonRpcRootChain, key: &tcp_state::AccountKey, contract: [u8; 20], max: u64) -> anyhow::Result<u128> {
    root.send(key, contract, 0, &plasma::finalize_exits(max)).context("finalizing exits")?;
    let owed = view_u128(root, contract, IPlasmaRoot::withdrawableCall { account: key.address().0.into() })?;
    if owed > 0 {
        root.send(key, contract, 0, &plasma::withdraw()).context("collecting")?;
    }
    Ok(owed)
}

fn view_u128<C: alloy_sol_types::SolCall>(root: &mut dyn RootChain, contract: [u8; 20], call: C) -> anyhow::Result<u128> {
    let out = root.call([0; 20], contract, 0, &call.abi_encode()).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(u128::from_be_bytes(out.get(16..32).context("a view returned no word")?.try_into()?))
}

fn root_status(root: &mut JsonRpcRootChain, contract: [u8; 20], account: Option<&str>) -> Result<Value, tcp_bridge::BridgeError> {
    let mut out = json!({
        "url": root.url(),
        "block": root.block_number()?,
        "latest_checkpoint": view_u64(root, contract, IPlasmaRoot::latestHeightCall {})?,
        "inbox_count": view_u64(root, contract, IPlasmaRoot::inboxCountCall {})?,
        "exits": view_u64(root, contract, IPlasmaRoot::exitCountCall {})?,
        "exits_settled": view_u64(root, contract, IPlasmaRoot::nextToFinalizeCall {})?,
        "frozen": view_u64(root, contract, IPlasmaRoot::frozenCall {})? == 1,
        "contract_balance": root.balance(contract)?.to_string(),
    });
    if let Some(a) = account.and_then(|a| a.parse::<Address>().ok()) {
        let owed = root
            .call([0; 20], contract, 0, &alloy_sol_types::SolCall::abi_encode(&IPlasmaRoot::withdrawableCall { account: a.0.into() }))
            .map_err(|e| tcp_bridge::BridgeError::Chain(e.to_string()))?;
        out["owed_to_account"] = json!(u128::from_be_bytes(owed.get(16..32).and_then(|b| b.try_into().ok()).unwrap_or([0; 16])).to_string());
    }
    Ok(out)
}

/// Write `bytes` to `path` readable by its owner only, atomically (a proof names an account's
/// holdings: private, like a key file).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    // A fresh name beside the target, created exclusively and never through a symlink (a
    // shared directory cannot redirect or pre-create it).
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("the OS RNG: {e}"))?;
    let tmp = path.with_extension(format!("tmp-{}", tcp_types::hex::encode(&nonce)));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// An account's bridged ETH on TCP (newest finalized state).
pub fn bridged_balance(tcp: &mut RpcClient, account: &Address) -> anyhow::Result<u128> {
    let bridge = tcp.call("bridge", json!([{"accounts": [account.to_string()]}]))?;
    Ok(bridge["accounts"][0]["balance"].as_str().unwrap_or("0").parse().unwrap_or(0))
}

fn serve_root_chain(listen: &str) -> anyhow::Result<std::process::ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!("embedded root chain (chain id {}) on http://{listen}", tcp_bridge::EmbeddedChain::CHAIN_ID);
        tcp_bridge::embedded_rpc::serve(listener, tcp_bridge::embedded_rpc::spawn()).await?;
        Ok::<_, anyhow::Error>(std::process::ExitCode::SUCCESS)
    })
}
