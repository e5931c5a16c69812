//! Confidential contracts from the command line (issue 20): `contract deploy|execute|show`,
//! `data put`, and `datasource` (the data source service). Built on `tcp-client`: what a node
//! says is checked with the light client against the chain's group key before it is used or
//! shown.

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use tcp_node::KeyStore;
use tcp_node::client::RpcClient;
use tcp_types::hex;

use super::client::{DEFAULT_RPC, home_dir};

#[derive(Args, Clone, Debug)]
pub struct ClientArgs {
    /// Key name in <home>/keys.
    #[arg(long)]
    pub from: String,
    #[arg(long, default_value = "~/.tcpchain")]
    pub home: String,
    /// The node the client reads the chain from (default: the compute node's own RPC; either
    /// way what it says is checked with the light client).
    #[arg(long)]
    pub rpc: Option<String>,
    #[command(flatten)]
    pub anchor: super::light::AnchorArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ContractCommand {
    /// Deploy a contract through a compute node: its enclave obtains the contract's first key
    /// from the secret-share group, runs `init` and the node submits the deploy; prints the
    /// contract id once committed.
    Deploy {
        /// The contract's WebAssembly module.
        #[arg(long)]
        wasm: PathBuf,
        /// The init input, as text (its UTF-8 bytes).
        #[arg(long, conflicts_with = "init_hex")]
        init: Option<String>,
        /// The init input, as hex.
        #[arg(long)]
        init_hex: Option<String>,
        /// The deploy nonce (part of the contract id); random by default.
        #[arg(long)]
        nonce: Option<u64>,
        /// The most the client pays the compute node, in base units.
        #[arg(long, default_value_t = 5_000_000)]
        max_fee: u128,
        /// The compute node's RPC (its endpoint in `query compute`).
        #[arg(long)]
        compute: String,
        /// Wait for the receipt (deploys always do; accepted for symmetry with `tx`).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Execute a contract: the input is sealed to the contract's key (read from a verified state
    /// proof), the result opened with a fresh result key and checked against the chain.
    Execute {
        /// The contract id (64 hex digits).
        cid: String,
        /// The input, as text (its UTF-8 bytes).
        #[arg(long, conflicts_with = "input_hex")]
        input: Option<String>,
        /// The input, as hex.
        #[arg(long)]
        input_hex: Option<String>,
        /// Data blobs the call uses (content hashes at a data source); each owner's price is paid
        /// with the fee.
        #[arg(long = "data")]
        data: Vec<String>,
        /// The most the client pays: the compute node's fee and the data owners' prices.
        #[arg(long, default_value_t = 5_000_000)]
        max_fee: u128,
        #[arg(long)]
        compute: String,
        /// Wait for the receipt (executions always do; accepted for symmetry with `tx`).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// A contract's record (code hash, owner, generations, public key, state hash), verified.
    Show {
        cid: String,
        #[arg(long, default_value = DEFAULT_RPC)]
        rpc: String,
        #[command(flatten)]
        anchor: super::light::AnchorArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Seal a file to a contract's key under your terms (a price per use) and upload it to a data
    /// source; prints its content hash, what `contract execute --data` names.
    Put {
        /// The file to upload.
        file: PathBuf,
        #[arg(long)]
        datasource: String,
        /// The contract that may use it (64 hex digits).
        #[arg(long)]
        contract: String,
        /// Price per use, in base units, paid by each execution that uses it.
        #[arg(long)]
        price: u128,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Args, Debug)]
pub struct DatasourceArgs {
    /// Where the blobs are kept (`<home>/blobs`).
    #[arg(long)]
    pub home: PathBuf,
    #[arg(long, default_value = "127.0.0.1:26700")]
    pub listen: String,
    /// A node of the chain: its id, and which compute nodes are in service.
    #[arg(long, default_value = DEFAULT_RPC)]
    pub rpc: String,
    #[arg(long, default_value_t = 1 << 20)]
    pub max_blob_bytes: usize,
    #[arg(long, default_value_t = 1 << 30)]
    pub max_total_bytes: u64,
}

fn cid_arg(text: &str) -> anyhow::Result<[u8; 32]> {
    hex::decode(text.trim_start_matches("0x")).ok().and_then(|b| b.try_into().ok()).context("a contract id is 64 hex digits")
}

fn bytes_arg(text: &Option<String>, hex_text: &Option<String>, name: &str) -> anyhow::Result<Vec<u8>> {
    match (text, hex_text) {
        (Some(t), None) => Ok(t.as_bytes().to_vec()),
        (None, Some(h)) => hex::decode(h).map_err(|e| anyhow::anyhow!("--{name}-hex: {e}")),
        _ => Ok(Vec::new()),
    }
}

fn print(json_out: bool, value: &Value, human: impl FnOnce(&Value) -> String) {
    if json_out {
        println!("{}", serde_json::to_string_pretty(value).expect("serializes"));
    } else {
        println!("{}", human(value));
    }
}

fn opened_json(opened: &tcp_client::Opened) -> Value {
    json!({
        "cid": hex::encode(&opened.cid),
        "request_id": hex::encode(&opened.request_id),
        "tx_hash": opened.tx_hash,
        "block_height": opened.block_height,
        "call_status": match opened.status { tcp_state::CallStatus::Ok => "ok", tcp_state::CallStatus::Failed => "failed" },
        "result_hex": hex::encode(&opened.result),
        // Text only when it is text: a binary result is shown in hex.
        "result_text": String::from_utf8(opened.result.clone()).ok().filter(|t| !t.chars().any(|c| c.is_control() && c != '\n')),
        "result_hash": hex::encode(&opened.result_hash),
        "result_verified": opened.verified,
        "fee": opened.fee.to_string(),
    })
}

fn describe(kind: &str, v: &Value) -> String {
    let result = v["result_text"].as_str().map(str::to_string).unwrap_or_else(|| format!("0x{}", v["result_hex"].as_str().unwrap_or("")));
    let verified = if v["result_verified"] == true { "result verified against the chain" } else { "result NOT checked against the chain" };
    format!(
        "{kind} {} committed in block {} ({}, fee {}): {result}\n{verified}",
        v["cid"].as_str().unwrap_or(""),
        v["block_height"],
        v["call_status"].as_str().unwrap_or(""),
        v["fee"].as_str().unwrap_or("")
    )
}

pub fn contract(command: ContractCommand) -> anyhow::Result<ExitCode> {
    match command {
        ContractCommand::Deploy { wasm, init, init_hex, nonce, max_fee, compute, wait: _, client } => {
            let code = std::fs::read(&wasm).with_context(|| format!("reading {}", wasm.display()))?;
            if code.len() > tcp_state::contracts::MAX_CODE_BYTES {
                bail!("{} is {} bytes, more than the {} a deploy may carry", wasm.display(), code.len(), tcp_state::contracts::MAX_CODE_BYTES);
            }
            let init = bytes_arg(&init, &init_hex, "init")?;
            let key = KeyStore::open(&home_dir(&client.home)?)?.load(&client.from)?;
            let mut chain = RpcClient::new(client.rpc.as_deref().unwrap_or(&compute))?;
            let (light, _) = super::light::trust_anchor(&mut chain, &client.anchor)?;
            let nonce = match nonce {
                Some(n) => n,
                None => {
                    let mut bytes = [0u8; 8];
                    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the OS RNG: {e}"))?;
                    u64::from_be_bytes(bytes) >> 1
                }
            };
            if !client.json {
                eprintln!("deploying {} ({} bytes) through {compute}: the enclave obtains the contract's key, runs init, the node submits…", wasm.display(), code.len());
            }
            let opened = tcp_client::deploy(&compute, &mut chain, &light, &key, &code, &init, nonce, max_fee)?;
            let mut v = opened_json(&opened);
            v["nonce"] = json!(nonce);
            print(client.json, &v, |v| describe("contract", v));
            Ok(if opened.status == tcp_state::CallStatus::Ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        ContractCommand::Execute { cid, input, input_hex, data, max_fee, compute, wait: _, client } => {
            let cid = cid_arg(&cid)?;
            let input = bytes_arg(&input, &input_hex, "input")?;
            let data = data.iter().map(|h| cid_arg(h).context("--data: 64 hex digits")).collect::<anyhow::Result<Vec<_>>>()?;
            if data.len() > tcp_state::contracts::MAX_DATA_USES {
                bail!("a call uses at most {} data blobs", tcp_state::contracts::MAX_DATA_USES);
            }
            let key = KeyStore::open(&home_dir(&client.home)?)?.load(&client.from)?;
            let mut chain = RpcClient::new(client.rpc.as_deref().unwrap_or(&compute))?;
            let (light, _) = super::light::trust_anchor(&mut chain, &client.anchor)?;
            if !client.json {
                eprintln!("executing {} through {compute}: input sealed to the contract's verified key; waiting for the receipt…", hex::encode(&cid));
            }
            let opened = tcp_client::execute(&compute, &mut chain, &light, &key, &cid, &input, data, max_fee)?;
            print(client.json, &opened_json(&opened), |v| describe("execution of", v));
            Ok(if opened.status == tcp_state::CallStatus::Ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        ContractCommand::Show { cid, rpc, anchor, json: json_out } => {
            let cid = cid_arg(&cid)?;
            let mut chain = RpcClient::new(&rpc)?;
            let (light, trust) = super::light::trust_anchor(&mut chain, &anchor)?;
            let c = tcp_client::verified_contract(&mut chain, &light, &cid)?;
            let v = json!({
                "cid": hex::encode(&cid),
                "code_hash": hex::encode(&c.code_hash),
                "owner": c.owner.to_string(),
                "generation": c.generation,
                "key_generation": c.key_generation,
                "public_key": hex::encode(&c.public_key),
                "state_hash": hex::encode(&c.state_hash),
                "deployed_at": c.deployed_at,
                "executions": c.executions,
                "verified": true,
                "trust_anchor": trust,
            });
            print(json_out, &v, |v| {
                format!(
                    "contract {}\n  code {}  owner {}\n  generation {} (state under {})  public key {}\n  state hash {}  deployed at {}  executions {}\n  (verified against the group key: {})",
                    v["cid"].as_str().unwrap_or(""),
                    v["code_hash"].as_str().unwrap_or(""),
                    v["owner"].as_str().unwrap_or(""),
                    v["generation"],
                    v["key_generation"],
                    v["public_key"].as_str().unwrap_or(""),
                    v["state_hash"].as_str().unwrap_or(""),
                    v["deployed_at"],
                    v["executions"],
                    v["trust_anchor"].as_str().unwrap_or("")
                )
            });
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn data(command: DataCommand) -> anyhow::Result<ExitCode> {
    match command {
        DataCommand::Put { file, datasource, contract, price, client } => {
            let cid = cid_arg(&contract)?;
            let plaintext = zeroize::Zeroizing::new(std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?);
            let key = KeyStore::open(&home_dir(&client.home)?)?.load(&client.from)?;
            let mut chain = RpcClient::new(client.rpc.as_deref().unwrap_or(DEFAULT_RPC))?;
            let (light, _) = super::light::trust_anchor(&mut chain, &client.anchor)?;
            let hash = tcp_client::put_data(&datasource, &mut chain, &light, &key, &cid, price, &plaintext)?;
            let v = json!({"hash": hex::encode(&hash), "owner": key.address().to_string(), "contract": hex::encode(&cid), "price": price.to_string(), "bytes": plaintext.len()});
            print(client.json, &v, |v| format!("stored {} (sealed to contract {}, {} per use)", v["hash"].as_str().unwrap_or(""), v["contract"].as_str().unwrap_or(""), price));
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn datasource(args: DatasourceArgs) -> anyhow::Result<ExitCode> {
    // The node may be starting beside us (a devnet): wait for it a while.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        match RpcClient::new(&args.rpc)?.call("status", json!([])) {
            Ok(status) if status["chain_id"].as_str().is_some_and(|c| !c.is_empty()) => break status,
            Ok(_) if std::time::Instant::now() > deadline => bail!("{} has not named its chain yet", args.rpc),
            Err(e) if std::time::Instant::now() > deadline => return Err(anyhow::anyhow!(e).context(format!("asking {} for the chain", args.rpc))),
            _ => std::thread::sleep(std::time::Duration::from_millis(250)),
        }
    };
    let chain = tcp_types::ChainId::new(status["chain_id"].as_str().unwrap_or_default()).map_err(|e| anyhow::anyhow!("the node's chain id: {e}"))?;
    let limits = tcp_datasource::StoreLimits { max_blob_bytes: args.max_blob_bytes, max_total_bytes: args.max_total_bytes };
    let store = tcp_datasource::BlobStore::open(&args.home.join("blobs"), chain.clone(), limits)?;
    let kept = store.len();
    let registry = std::sync::Arc::new(tcp_datasource::NodeRegistry::new(args.rpc.clone()));
    let app = tcp_datasource::router(store, chain.clone(), limits, registry);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
        eprintln!("data source for chain {} on http://{} ({kept} blobs kept in {})", chain.as_str(), listener.local_addr()?, args.home.join("blobs").display());
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        tcp_datasource::serve(listener, app, shutdown).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
