//! Client commands over JSON-RPC: `status`, `query account|block|tx`, `tx transfer`.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tcp_node::KeyStore;
use tcp_node::client::RpcClient;
use tcp_state::{Action, Address, Transaction};

pub const DEFAULT_RPC: &str = "http://127.0.0.1:26657";

#[derive(Args, Clone, Debug)]
pub struct StatusArgs {
    #[arg(long, default_value = DEFAULT_RPC)]
    pub rpc: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Clone, Debug)]
pub enum QueryCommand {
    /// Balance and nonce of an address.
    Account {
        address: String,
        #[arg(long, default_value = DEFAULT_RPC)]
        rpc: String,
        #[arg(long)]
        json: bool,
    },
    /// A block by height or by id (64 hex digits).
    Block {
        at: String,
        #[arg(long, default_value = DEFAULT_RPC)]
        rpc: String,
        #[arg(long)]
        json: bool,
    },
    /// A Merkle proof of an account (or of any state key) against the state root of the
    /// latest committed block; `--verify` checks it against that block's header.
    Proof {
        /// The account to prove (present or absent).
        #[arg(long, conflicts_with = "key", required_unless_present = "key")]
        account: Option<String>,
        /// A raw state key (64 hex digits), see docs/state-proofs.md.
        #[arg(long)]
        key: Option<String>,
        /// Check the proof against the state root in the header of the block it is for; exit 1
        /// if it does not verify.
        #[arg(long)]
        verify: bool,
        #[arg(long, default_value = DEFAULT_RPC)]
        rpc: String,
        #[arg(long)]
        json: bool,
    },
    /// A transaction and its receipt by hash.
    Tx {
        hash: String,
        #[arg(long, default_value = DEFAULT_RPC)]
        rpc: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Clone, Debug)]
pub enum TxCommand {
    /// Sign and submit a transfer from a key in <home>/keys.
    Transfer(TransferArgs),
}

#[derive(Args, Clone, Debug)]
pub struct TransferArgs {
    /// Key name in <home>/keys.
    #[arg(long)]
    pub from: String,
    /// Recipient address (0x + 40 hex digits).
    #[arg(long)]
    pub to: String,
    #[arg(long)]
    pub amount: String,
    #[arg(long, default_value_t = 1)]
    pub gas_price: u64,
    #[arg(long, default_value_t = tcp_state::accounts::TRANSFER_GAS)]
    pub gas_limit: u64,
    /// Defaults to the sender's next nonce counting its pending transactions.
    #[arg(long)]
    pub nonce: Option<u64>,
    /// Wait until the transfer is committed (up to 30 s).
    #[arg(long)]
    pub wait: bool,
    #[arg(long, default_value = "~/.tcpchain")]
    pub home: String,
    #[arg(long, default_value = DEFAULT_RPC)]
    pub rpc: String,
    #[arg(long)]
    pub json: bool,
}

fn print(json_out: bool, value: &Value, human: impl FnOnce(&Value) -> String) {
    if json_out {
        println!("{}", serde_json::to_string_pretty(value).expect("serializes"));
    } else {
        println!("{}", human(value));
    }
}

pub fn status(args: StatusArgs) -> anyhow::Result<std::process::ExitCode> {
    let mut client = RpcClient::new(&args.rpc)?;
    let status = client.call("status", json!([]))?;
    print(args.json, &status, |s| {
        format!(
            "{} on {}: height {} (block {}), consensus at {}/{}, {} peers, {} pending txs{}",
            s["node"].as_str().unwrap_or("?"),
            s["chain_id"].as_str().unwrap_or("?"),
            s["height"],
            &s["block_id"].as_str().unwrap_or("")[..16.min(s["block_id"].as_str().unwrap_or("").len())],
            s["consensus_height"],
            s["consensus_round"],
            s["peers"],
            s["mempool_size"],
            if s["syncing"].as_bool() == Some(true) { format!(", syncing to {}", s["sync_target"]) } else { String::new() },
        )
    });
    Ok(std::process::ExitCode::SUCCESS)
}

pub fn query(command: QueryCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        QueryCommand::Account { address, rpc, json: j } => {
            let address: Address = address.parse().map_err(|e| anyhow::anyhow!("address: {e}"))?;
            let v = RpcClient::new(&rpc)?.call("account", json!([address.to_string()]))?;
            print(j, &v, |v| format!("{}: balance {}, nonce {}", v["address"].as_str().unwrap_or(""), v["balance"].as_str().unwrap_or(""), v["nonce"]));
        }
        QueryCommand::Block { at, rpc, json: j } => {
            let mut client = RpcClient::new(&rpc)?;
            let v = match at.parse::<u64>() {
                Ok(h) => client.call("block", json!([h, true]))?,
                Err(_) => client.call("block_by_hash", json!([at, true]))?,
            };
            if v.is_null() {
                bail!("no block {at}");
            }
            print(j, &v, |v| {
                format!(
                    "block {} id {} parent {} proposer {} round {} time {} txs {}",
                    v["height"],
                    v["id"].as_str().unwrap_or(""),
                    v["parent"].as_str().unwrap_or(""),
                    v["proposer"],
                    v["round"],
                    v["timestamp_ms"],
                    v["transactions"].as_array().map_or(0, Vec::len)
                )
            });
        }
        QueryCommand::Proof { account, key, verify, rpc, json: j } => return query_proof(account, key, verify, &rpc, j),
        QueryCommand::Tx { hash, rpc, json: j } => {
            let mut client = RpcClient::new(&rpc)?;
            let tx = client.call("transaction", json!([hash]))?;
            if tx.is_null() {
                bail!("transaction {hash} is not committed (or unknown)");
            }
            let receipt = client.call("receipt", json!([hash]))?;
            let v = json!({"transaction": tx, "receipt": receipt});
            print(j, &v, |v| {
                let t = &v["transaction"];
                format!(
                    "{} → {}: {} (nonce {}), in block {} at index {}, fee {}",
                    t["from"].as_str().unwrap_or("?"),
                    t["to"].as_str().unwrap_or("?"),
                    t["amount"].as_str().unwrap_or("?"),
                    t["nonce"],
                    t["block_height"],
                    t["index"],
                    v["receipt"]["fee"].as_str().unwrap_or("?")
                )
            });
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn query_proof(account: Option<String>, key: Option<String>, verify: bool, rpc: &str, json_out: bool) -> anyhow::Result<std::process::ExitCode> {
    let mut client = RpcClient::new(rpc)?;
    let params = match (&account, &key) {
        (Some(address), _) => {
            let address: Address = address.parse().map_err(|e| anyhow::anyhow!("--account: {e}"))?;
            json!([address.to_string()])
        }
        (None, Some(key)) => json!([{"key": key}]),
        (None, None) => bail!("give --account or --key"),
    };
    let mut proof_json = client.call("state_proof", params)?;
    let (height, claimed_root, proof) = tcp_node::proof::proof_from_json(&proof_json).map_err(|e| anyhow::anyhow!("the node's proof is malformed: {e}"))?;
    let mut verified = None;
    if verify {
        let block = client.call("block", json!([height]))?;
        let header_root = block["state_root"].as_str().with_context(|| format!("block {height} has no state root"))?;
        let outcome = if header_root != tcp_types::hex::encode(&claimed_root) {
            Err(format!("the proof is for root {}, block {height} commits {header_root}", tcp_types::hex::encode(&claimed_root)))
        } else {
            proof.verify(&claimed_root).map(|_| ()).map_err(|e| e.to_string())
        };
        proof_json["verified"] = json!(outcome.is_ok());
        if let Err(e) = &outcome {
            proof_json["verify_error"] = json!(e);
        }
        verified = Some(outcome);
    }
    print(json_out, &proof_json, |v| {
        let what = match v["proof_type"].as_str() {
            Some("inclusion") => match v["account"].as_object() {
                Some(a) => format!("account {}: balance {}, nonce {}", a["address"].as_str().unwrap_or(""), a["balance"].as_str().unwrap_or(""), a["nonce"]),
                None => format!("value {}", v["value"].as_str().unwrap_or("")),
            },
            _ => "absent".to_string(),
        };
        let check = match &verified {
            None => String::new(),
            Some(Ok(())) => "\nverified against the state root of block ".to_string() + &height.to_string(),
            Some(Err(e)) => format!("\nDOES NOT VERIFY: {e}"),
        };
        format!(
            "key {} at height {height} (state root {}): {what}; {} siblings{check}",
            v["key"].as_str().unwrap_or(""),
            v["state_root"].as_str().unwrap_or(""),
            v["siblings"].as_array().map_or(0, Vec::len)
        )
    });
    Ok(match verified {
        Some(Err(_)) => std::process::ExitCode::FAILURE,
        _ => std::process::ExitCode::SUCCESS,
    })
}

pub fn home_dir(home: &str) -> anyhow::Result<PathBuf> {
    Ok(match home.strip_prefix("~/") {
        Some(rest) => PathBuf::from(std::env::var("HOME").context("HOME is not set; pass --home")?).join(rest),
        None => PathBuf::from(home),
    })
}

pub fn tx(command: TxCommand) -> anyhow::Result<std::process::ExitCode> {
    let TxCommand::Transfer(args) = command;
    let key = KeyStore::open(&home_dir(&args.home)?)?.load(&args.from)?;
    let to: Address = args.to.parse().map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    let amount: u128 = args.amount.parse().context("--amount must be a non-negative integer")?;
    let mut client = RpcClient::new(&args.rpc)?;
    let status = client.call("status", json!([]))?;
    let chain_id = tcp_types::ChainId::new(status["chain_id"].as_str().unwrap_or_default()).map_err(|e| anyhow::anyhow!("node's chain id: {e}"))?;
    let nonce = match args.nonce {
        Some(n) => n,
        None => client.call("account", json!([key.address().to_string()]))?["pending_nonce"].as_u64().context("account answer lacks pending_nonce")?,
    };
    let signed = Transaction { chain_id, nonce, gas_price: args.gas_price, gas_limit: args.gas_limit, action: Action::Transfer { to, amount } }.sign(&key);
    let hash = client.call("send_transaction", json!([tcp_types::hex::encode(&signed.encode())]))?;
    let hash = hash.as_str().context("send_transaction answered without a hash")?.to_string();
    let mut out = json!({"hash": hash, "from": key.address().to_string(), "to": to.to_string(), "amount": amount.to_string(), "nonce": nonce});
    if args.wait {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let receipt = client.call("receipt", json!([hash]))?;
            if !receipt.is_null() {
                out["receipt"] = receipt;
                break;
            }
            if Instant::now() > deadline {
                bail!("transfer {hash} was accepted but not committed within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    print(args.json, &out, |v| match v.get("receipt") {
        Some(r) => format!("transfer {} committed in block {} (fee {})", v["hash"].as_str().unwrap_or(""), r["block_height"], r["fee"].as_str().unwrap_or("")),
        None => format!("transfer {} submitted", v["hash"].as_str().unwrap_or("")),
    });
    Ok(std::process::ExitCode::SUCCESS)
}
