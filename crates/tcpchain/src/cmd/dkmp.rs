//! `tcpchain dkmp request`: a compute node's attested enclave obtains a contract key from the
//! live secret-share group (issue 19). The command asks the compute node's own RPC
//! (`dkmp_request`, served by its compute service, which owns the enclave); the key stays in
//! the enclave, and what is printed is public: the contract's public key and who answered.

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use tcp_node::client::RpcClient;

#[derive(Subcommand, Debug)]
pub enum DkmpCommand {
    /// Have the compute node's enclave obtain a contract key from the serving group.
    Request(RequestArgs),
}

#[derive(Args, Debug)]
pub struct RequestArgs {
    /// The compute node's home (its config names its RPC address).
    #[arg(long)]
    home: PathBuf,
    /// A deployed contract's id, 32 bytes of hex.
    #[arg(long, required_unless_present = "deploy_wasm", conflicts_with = "deploy_wasm")]
    cid: Option<String>,
    /// The key generation (of a deployed contract).
    #[arg(long, default_value_t = 0)]
    generation: u64,
    /// Instead: the first key of the contract this code makes when --deployer deploys it with
    /// --deploy-nonce (the contract does not exist yet; its id is the hash of the three).
    #[arg(long, requires_all = ["deployer", "deploy_nonce"])]
    deploy_wasm: Option<PathBuf>,
    #[arg(long)]
    deployer: Option<String>,
    #[arg(long)]
    deploy_nonce: Option<u64>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(command: DkmpCommand) -> Result<ExitCode> {
    let DkmpCommand::Request(args) = command;
    let params = match (&args.cid, &args.deploy_wasm) {
        (Some(cid), _) => {
            let cid = tcp_types::hex::decode(cid).ok().filter(|b| b.len() == 32).context("--cid: 32 bytes of hex")?;
            json!([{"cid": tcp_types::hex::encode(&cid), "generation": args.generation}])
        }
        (None, Some(wasm)) => {
            let code = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
            let deployer: tcp_state::Address = args.deployer.as_deref().unwrap_or_default().parse().map_err(|e| anyhow::anyhow!("--deployer: {e}"))?;
            json!([{"deploy": {"code": tcp_types::hex::encode(&code), "deployer": deployer.to_string(), "nonce": args.deploy_nonce}}])
        }
        (None, None) => anyhow::bail!("--cid or --deploy-wasm"),
    };
    let config = tcp_node::genesis::NodeConfig::load(&args.home).with_context(|| format!("reading {}", args.home.display()))?;
    if config.compute.is_none() {
        anyhow::bail!("{} is not a compute node's home (its config has no `compute` section)", args.home.display());
    }
    let mut client = RpcClient::new(&format!("http://{}", config.rpc_listen))?;
    let out = client.call("dkmp_request", params).context("dkmp_request")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let list = |v: &serde_json::Value| v.as_array().map(|a| a.len()).unwrap_or(0);
    println!("contract    {} generation {}", out["cid"].as_str().unwrap_or_default(), out["generation"]);
    println!("public key  {}", out["public_key"].as_str().unwrap_or_default());
    println!(
        "group       epoch {}, {} answered, {} bad, {} missing (threshold {})",
        out["epoch"],
        list(&out["answered"]),
        list(&out["bad"]),
        list(&out["missing"]),
        out["threshold"]
    );
    for member in out["answered"].as_array().into_iter().flatten() {
        println!("  answered  {}", member.as_str().unwrap_or_default());
    }
    Ok(ExitCode::SUCCESS)
}
