//! `tcpchain harness`: a test harness that makes a validator misbehave with its own key, so
//! slashing can be exercised on a real network. It signs two conflicting prevotes for the same
//! height and round with the node's consensus key and prints the resulting evidence (hex), which
//! `tcpchain tx submit-evidence` then reports. Hidden from `--help`: no operator needs it.

use anyhow::Context as _;
use clap::Subcommand;
use commonware_cryptography::Signer as _;
use serde_json::json;
use std::path::PathBuf;
use tcp_consensus::{ConsensusDomains, Evidence, Vote, VoteType};
use tcp_node::client::RpcClient;
use tcp_types::{Height, Round, ValidatorIndex};

#[derive(Subcommand, Clone, Debug)]
pub enum HarnessCommand {
    /// Sign two conflicting prevotes of `height` with the node's key; print the evidence.
    Equivocate {
        #[arg(long)]
        node_home: PathBuf,
        /// Defaults to the last committed height.
        #[arg(long)]
        height: Option<u64>,
        #[arg(long, default_value = super::client::DEFAULT_RPC)]
        rpc: String,
    },
}

pub fn run(command: HarnessCommand) -> anyhow::Result<std::process::ExitCode> {
    let HarnessCommand::Equivocate { node_home, height, rpc } = command;
    let secrets = tcp_node::keystore::NodeSecrets::load(&node_home.join("node_key.json")).context("reading the node's key")?;
    let mut client = RpcClient::new(&rpc)?;
    let status = client.call("status", json!([]))?;
    let chain_id = tcp_types::ChainId::new(status["chain_id"].as_str().unwrap_or_default()).map_err(|e| anyhow::anyhow!("chain id: {e}"))?;
    let height = height.unwrap_or(status["height"].as_u64().context("status lacks height")?);
    // The signer's index in the current epoch's set (the evidence names it).
    let me = tcp_node::genesis::encode_ed25519_public(&secrets.consensus_key.public_key());
    let validators = client.call("validators", json!([]))?;
    let index = validators["active"]
        .as_array()
        .and_then(|a| a.iter().find(|m| m["consensus_key"].as_str() == Some(me.as_str())))
        .and_then(|m| m["index"].as_u64())
        .context("this node is not in the current validator set")?;
    let domains = ConsensusDomains::new(&chain_id);
    let vote = |tag: &[u8]| Vote {
        vote_type: VoteType::Prevote,
        height: Height(height),
        round: Round(0),
        value: Some(tcp_crypto::sha256(&[b"tcp/harness/equivocation", tag])),
        validator: ValidatorIndex(index as u32),
        extension: Default::default(),
    };
    let evidence = Evidence::ConflictingVotes(
        Box::new(domains.sign_vote(&secrets.consensus_key, vote(b"a"))),
        Box::new(domains.sign_vote(&secrets.consensus_key, vote(b"b"))),
    );
    println!("{}", tcp_types::hex::encode(&evidence.encode()));
    Ok(std::process::ExitCode::SUCCESS)
}
