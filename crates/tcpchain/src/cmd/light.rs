//! `tcpchain light verify`: fetch a header and its finality signature φ from any RPC and check
//! them with the light client (`tcp-light`) against a trust anchor — the chain id and the group
//! key — that does not come from that RPC's word:
//!
//! * `--chain-id` and `--group-key`, given by the user;
//! * `--genesis FILE`: both derived from the genesis file (the group key from its bootstrap
//!   DKG logs);
//! * otherwise the anchor pinned in `~/.tcpchain/light/<chain id>.json` for the chain the RPC
//!   names (`tcpchain devnet` pins its genesis's), and an RPC claiming another key or genesis
//!   is refused. With no pin for that chain the command refuses, unless `--trust-on-first-use`
//!   lets it pin what the RPC's `light_client_info` says (like an SSH host key; the output says
//!   so).

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tcp_beacon::signature::GROUP_KEY_BYTES;
use tcp_light::LightClient;
use tcp_node::client::RpcClient;
use tcp_types::{ChainId, hex};

#[derive(Subcommand, Debug)]
pub enum LightCommand {
    /// Fetch header H and its φ from an RPC and verify them against the group key (one
    /// pairing check). Exit 0 if they verify, 1 if not.
    Verify(VerifyArgs),
}

/// Where the chain id and group key come from (see the module docs).
#[derive(Args, Debug, Clone)]
pub struct AnchorArgs {
    /// The genesis file of the chain: chain id and group key derived from it.
    #[arg(long, conflicts_with_all = ["chain_id", "group_key"])]
    pub genesis: Option<PathBuf>,
    /// The chain id (with --group-key).
    #[arg(long, requires = "group_key")]
    pub chain_id: Option<String>,
    /// The chain's group public key, 96 bytes of hex (with --chain-id).
    #[arg(long, requires = "chain_id")]
    pub group_key: Option<String>,
    /// Directory of pinned trust anchors [default: ~/.tcpchain/light].
    #[arg(long)]
    pub anchors: Option<PathBuf>,
    /// With no anchor pinned for the chain the RPC names, pin what that RPC says (its word is
    /// taken this once; later runs hold it to that answer).
    #[arg(long)]
    pub trust_on_first_use: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[arg(long, default_value = super::client::DEFAULT_RPC)]
    rpc: String,
    /// The height of the header to verify.
    #[arg(long)]
    height: u64,
    #[command(flatten)]
    anchor: AnchorArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// A light client and a sentence saying where its trust anchor came from.
pub fn trust_anchor(client: &mut RpcClient, args: &AnchorArgs) -> Result<(LightClient, String)> {
    if let (Some(chain_id), Some(key)) = (&args.chain_id, &args.group_key) {
        let chain_id = ChainId::new(chain_id).map_err(|e| anyhow!("--chain-id: {e}"))?;
        let key = decode_hex("group-key", key, GROUP_KEY_BYTES)?;
        let light = LightClient::from_group_key_bytes(chain_id, &key).context("--group-key is not a point of G2")?;
        return Ok((light, "the chain id and group key given".into()));
    }
    if let Some(path) = &args.genesis {
        let spec = tcp_node::genesis::ChainSpec::load(path)?;
        let key = spec.bootstrap_group_key().map_err(|e| anyhow!("{}: {e}", path.display()))?;
        return Ok((LightClient::new(spec.chain_id.clone(), key), format!("the genesis file {}", path.display())));
    }
    let info = client.call("light_client_info", json!([]))?;
    let chain_id = info["chain_id"].as_str().context("light_client_info: no chain_id")?;
    let chain_id = ChainId::new(chain_id).map_err(|e| anyhow!("the RPC's chain id: {e}"))?;
    let claimed = info["group_key"].as_str().context("the node has no group key yet (its beacon has not started)")?;
    let path = anchor_path(args.anchors.as_deref(), &chain_id);
    let genesis_hash = info["genesis_hash"].as_str().unwrap_or("");
    match read_anchor(&path)? {
        Some(pinned) => {
            if pinned.group_key != claimed || (!pinned.genesis_hash.is_empty() && pinned.genesis_hash != genesis_hash) {
                bail!(
                    "the RPC claims group key {} (genesis {}) for chain {}, but {} pins {} (genesis {}): refusing (remove the file only if the chain was really reset)",
                    abbreviate(claimed),
                    abbreviate(genesis_hash),
                    chain_id.as_str(),
                    path.display(),
                    abbreviate(&pinned.group_key),
                    abbreviate(&pinned.genesis_hash)
                );
            }
            let light = LightClient::from_group_key_bytes(chain_id, &decode_hex("pinned group key", &pinned.group_key, GROUP_KEY_BYTES)?)?;
            Ok((light, format!("the group key pinned in {}", path.display())))
        }
        None if args.trust_on_first_use => {
            let light = LightClient::from_group_key_bytes(chain_id.clone(), &decode_hex("the RPC's group key", claimed, GROUP_KEY_BYTES)?)
                .context("the RPC's group key is not a point of G2")?;
            pin_anchor(&path, &chain_id, claimed, genesis_hash, false)?;
            Ok((light, format!("first use: the RPC's group key, now pinned in {} (pass --genesis to check it)", path.display())))
        }
        None => bail!(
            "no trust anchor for chain {} (the RPC's claim): pass --genesis FILE, or --chain-id and --group-key, or --trust-on-first-use to pin what this RPC says in {}",
            chain_id.as_str(),
            path.display()
        ),
    }
}

/// The first characters of a hex string the RPC sent (any text: cut on a character boundary).
fn abbreviate(text: &str) -> String {
    let head: String = text.chars().take(16).collect();
    if head.len() < text.len() { format!("{head}…") } else { head }
}

struct PinnedAnchor {
    group_key: String,
    genesis_hash: String,
}

fn anchor_path(dir: Option<&Path>, chain_id: &ChainId) -> PathBuf {
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| super::keys::default_home().join("light"));
    dir.join(format!("{}.json", chain_id.as_str()))
}

/// Pin the anchor a genesis file defines (what `tcpchain devnet` does for the chain it makes,
/// replacing a pin of an earlier devnet with the same chain id). Returns the file.
pub fn pin_genesis_anchor(spec: &tcp_node::genesis::ChainSpec, genesis: &Path) -> Result<PathBuf> {
    let key = spec.bootstrap_group_key().map_err(|e| anyhow!("{}: {e}", genesis.display()))?;
    let path = anchor_path(None, &spec.chain_id);
    pin_anchor(&path, &spec.chain_id, &hex::encode(&tcp_beacon::signature::group_key_to_bytes(&key)), &spec.hash.to_hex(), true)?;
    Ok(path)
}

fn read_anchor(path: &Path) -> Result<Option<PinnedAnchor>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("{}: {e}", path.display())),
    };
    let value: Value = serde_json::from_slice(&bytes).with_context(|| format!("{}: not JSON", path.display()))?;
    let key = value["group_key"].as_str().with_context(|| format!("{}: no group_key", path.display()))?;
    Ok(Some(PinnedAnchor { group_key: key.to_string(), genesis_hash: value["genesis_hash"].as_str().unwrap_or("").to_string() }))
}

/// Written whole to a temporary file, then moved into place: a crash leaves the old anchor or
/// the new. `replace` false: an anchor another process pinned meanwhile is kept (and this call
/// fails), so two first uses cannot both win.
fn pin_anchor(path: &Path, chain_id: &ChainId, group_key: &str, genesis_hash: &str, replace: bool) -> Result<()> {
    let dir = path.parent().context("anchor path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let body = serde_json::to_vec_pretty(&json!({"chain_id": chain_id.as_str(), "group_key": group_key, "genesis_hash": genesis_hash}))?;
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(&tmp, body).with_context(|| format!("writing {}", tmp.display()))?;
    let moved = if replace { std::fs::rename(&tmp, path) } else { std::fs::hard_link(&tmp, path) };
    let _ = std::fs::remove_file(&tmp);
    moved.with_context(|| format!("pinning {}", path.display()))?;
    Ok(())
}

fn decode_hex(what: &str, value: &str, len: usize) -> Result<Vec<u8>> {
    let bytes = hex::decode(value).map_err(|e| anyhow!("{what}: {e}"))?;
    if bytes.len() != len {
        bail!("{what}: expected {len} bytes, got {}", bytes.len());
    }
    Ok(bytes)
}

pub use tcp_client::fetch_verified_header;

pub fn run(command: LightCommand) -> Result<ExitCode> {
    let LightCommand::Verify(args) = command;
    let mut client = RpcClient::new(&args.rpc)?;
    let (light, anchor) = trust_anchor(&mut client, &args.anchor)?;
    let started = std::time::Instant::now();
    match fetch_verified_header(&mut client, &light, args.height) {
        Ok(header) => {
            let h = header.header();
            let round = h.round.0;
            if args.json {
                let out = json!({
                    "verified": true,
                    "height": h.height.0,
                    "id": header.id().to_hex(),
                    "state_root": h.state_root.to_hex(),
                    "parent": h.parent.to_hex(),
                    "timestamp_ms": h.timestamp_ms,
                    "proposal_round": round,
                    "chain_id": light.chain_id().as_str(),
                    "pairings": 1,
                    "trust_anchor": anchor,
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!(
                    "verified header {} of chain {}: id {}, state root {}, parent {}, time {} ms\n1 pairing: its finality signature checks against the group key ({anchor}); {:.1} ms with fetching",
                    h.height.0,
                    light.chain_id().as_str(),
                    header.id(),
                    h.state_root,
                    h.parent,
                    h.timestamp_ms,
                    started.elapsed().as_secs_f64() * 1e3
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&json!({"verified": false, "height": args.height, "error": format!("{e:#}")}))?);
            } else {
                eprintln!("NOT VERIFIED: {e:#}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
