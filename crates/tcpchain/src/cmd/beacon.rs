//! `tcpchain beacon verify`: a light client's check of one beacon output — σ_h against the
//! group key with one pairing check, given the chain id, the height and the link σ_h chains on.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use std::process::ExitCode;
use tcp_beacon::signature::{SIGNATURE_BYTES, group_key_from_bytes};
use tcp_beacon::{BeaconSignature, Previous, beacon_message, verify_beacon};
use tcp_types::{ChainId, Digest, Height, hex};

#[derive(Subcommand, Debug)]
pub enum BeaconCommand {
    /// Check σ_h against the group key (one pairing check). Exit 0 if it verifies, 1 if not.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The chain's id (σ_h is bound to it).
    #[arg(long)]
    chain_id: String,
    /// The height h of σ_h.
    #[arg(long)]
    height: u64,
    /// The group public key, 96 bytes of hex (a G2 point).
    #[arg(long)]
    group_key: String,
    /// σ_h, 48 bytes of hex (a G1 point).
    #[arg(long)]
    signature: String,
    /// σ_{h-1}, 48 bytes of hex (every height but the beacon's first).
    #[arg(long, conflicts_with = "seed", required_unless_present = "seed")]
    previous_signature: Option<String>,
    /// The seed the first beacon height chains on, 32 bytes of hex.
    #[arg(long)]
    seed: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn decode(what: &str, value: &str, len: usize) -> Result<Vec<u8>> {
    let bytes = hex::decode(value).map_err(|e| anyhow!("--{what}: {e}"))?;
    if bytes.len() != len {
        bail!("--{what}: expected {len} bytes, got {}", bytes.len());
    }
    Ok(bytes)
}

pub fn run(command: BeaconCommand) -> Result<ExitCode> {
    let BeaconCommand::Verify(args) = command;
    let chain_id = ChainId::new(&args.chain_id).map_err(|e| anyhow!("--chain-id: {e}"))?;
    let group_key = group_key_from_bytes(&decode("group-key", &args.group_key, tcp_beacon::signature::GROUP_KEY_BYTES)?)
        .context("--group-key is not a valid G2 point")?;
    let signature = BeaconSignature::from_bytes(&decode("signature", &args.signature, SIGNATURE_BYTES)?)
        .context("--signature is not a valid G1 point")?;
    let previous = match (&args.previous_signature, &args.seed) {
        (Some(p), _) => Previous::Signature(
            BeaconSignature::from_bytes(&decode("previous-signature", p, SIGNATURE_BYTES)?)
                .context("--previous-signature is not a valid G1 point")?,
        ),
        (None, Some(seed)) => Previous::Seed(Digest(decode("seed", seed, 32)?.try_into().expect("32 bytes"))),
        (None, None) => bail!("give --previous-signature (σ_{{h-1}}) or --seed"),
    };
    let height = Height(args.height);
    let ok = verify_beacon(&group_key, &beacon_message(&chain_id, height, &previous), &signature);
    let randomness = signature.randomness().to_hex();
    if args.json {
        println!("{{\"height\":{},\"verified\":{ok},\"randomness\":\"{randomness}\"}}", height.0);
    } else if ok {
        println!("σ at height {height} verifies against the group key");
        println!("randomness R = SHA-256(σ): {randomness}");
    } else {
        println!("σ at height {height} does NOT verify against the group key (wrong signature, height, link, chain id or key)");
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The `tcpchain beacon verify` invocation that checks a committed σ.
pub fn verify_command(sample: &tcp_sim::BeaconSample) -> String {
    let link = match sample.previous {
        Previous::Signature(p) => format!("--previous-signature {}", hex::encode(&p.to_bytes())),
        Previous::Seed(seed) => format!("--seed {}", seed.to_hex()),
    };
    format!(
        "tcpchain beacon verify --chain-id {} --height {} --group-key {} --signature {} {link}",
        sample.chain_id,
        sample.height,
        hex::encode(&sample.group_key),
        hex::encode(&sample.signature.to_bytes())
    )
}
