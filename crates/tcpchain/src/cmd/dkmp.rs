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
    /// The contract id, 32 bytes of hex.
    #[arg(long)]
    cid: String,
    /// The key generation.
    #[arg(long, default_value_t = 0)]
    generation: u64,
    /// "execute" (the contract exists) or "deploy" (it does not yet; generation 0).
    #[arg(long, default_value = "execute")]
    purpose: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(command: DkmpCommand) -> Result<ExitCode> {
    let DkmpCommand::Request(args) = command;
    let cid = tcp_types::hex::decode(&args.cid).ok().filter(|b| b.len() == 32).context("--cid: 32 bytes of hex")?;
    if !["execute", "deploy"].contains(&args.purpose.as_str()) {
        anyhow::bail!("--purpose: \"execute\" or \"deploy\"");
    }
    let config = tcp_node::genesis::NodeConfig::load(&args.home).with_context(|| format!("reading {}", args.home.display()))?;
    if config.compute.is_none() {
        anyhow::bail!("{} is not a compute node's home (its config has no `compute` section)", args.home.display());
    }
    let mut client = RpcClient::new(&format!("http://{}", config.rpc_listen))?;
    let params = json!([{"cid": tcp_types::hex::encode(&cid), "generation": args.generation, "purpose": args.purpose}]);
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
