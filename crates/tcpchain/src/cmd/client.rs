//! Client commands over JSON-RPC: `status`, `query account|block|proof|validators|staking|tx`,
//! `tx transfer|bond|unbond|unjail|submit-evidence`.

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
    /// latest committed block; `--verify` checks that block's header with the light client
    /// (its finality signature against the group key) and the proof against its state root.
    Proof {
        /// The account to prove (present or absent).
        #[arg(long, conflicts_with = "key", required_unless_present_any = ["key", "validator"])]
        account: Option<String>,
        /// A raw state key (64 hex digits), see docs/state-proofs.md.
        #[arg(long)]
        key: Option<String>,
        /// The validator entry of an operator address.
        #[arg(long, conflicts_with_all = ["account", "key"])]
        validator: Option<String>,
        /// Verify, without trusting the RPC: the header of the proof's block by its finality
        /// signature (light client), then the proof against that header's state root; exit 1 if
        /// either does not verify.
        #[arg(long)]
        verify: bool,
        /// Where the light client's chain id and group key come from (with --verify).
        #[command(flatten)]
        anchor: super::light::AnchorArgs,
        #[arg(long, default_value = DEFAULT_RPC)]
        rpc: String,
        #[arg(long)]
        json: bool,
    },
    /// The validator set of the current epoch and every registered validator.
    Validators {
        #[arg(long, default_value = DEFAULT_RPC)]
        rpc: String,
        #[arg(long)]
        json: bool,
    },
    /// Every registered compute node: operator, endpoint, bond, whether it can serve, and its
    /// registered enclaves (keys, identity, TCB, expiry).
    Compute {
        #[arg(long, default_value = DEFAULT_RPC)]
        rpc: String,
        #[arg(long)]
        json: bool,
    },
    /// The key-release ledger: every contract key the secret-share group released, by contract,
    /// enclave identity or enclave key (one page at a time), with state proofs in --json.
    Releases {
        /// The contract id (32 bytes of hex).
        #[arg(long, conflicts_with_all = ["measurement", "enclave"], required_unless_present_any = ["measurement", "enclave"])]
        cid: Option<String>,
        /// The enclave identity (MRENCLAVE or TD identity, 32 bytes of hex).
        #[arg(long, conflicts_with = "enclave")]
        measurement: Option<String>,
        /// The enclave's registered signing key (32 bytes of hex).
        #[arg(long)]
        enclave: Option<String>,
        #[arg(long, default_value_t = 0)]
        page: u64,
        #[arg(long, default_value = DEFAULT_RPC)]
        rpc: String,
        #[arg(long)]
        json: bool,
    },
    /// After a TEE advisory: which (contract, generation) keys reached enclaves of an identity,
    /// or enclaves judged under a TCB evaluation data number below a bound.
    Exposure {
        #[arg(long, conflicts_with = "tcb_below", required_unless_present = "tcb_below")]
        measurement: Option<String>,
        /// Intel's TCB evaluation data number of the recovery: enclaves judged under an older one.
        #[arg(long)]
        tcb_below: Option<u64>,
        #[arg(long, default_value = DEFAULT_RPC)]
        rpc: String,
        #[arg(long)]
        json: bool,
    },
    /// Each use of an owner's data: contract, request, blob, block and the amount paid, with
    /// state proofs in --json.
    DataUsage {
        #[arg(long)]
        owner: String,
        #[arg(long, default_value_t = 0)]
        page: u64,
        #[arg(long, default_value = DEFAULT_RPC)]
        rpc: String,
        #[arg(long)]
        json: bool,
    },
    /// DKMP's secret-share group: the serving group (epoch, members, threshold, master public
    /// key), the ceremony under way, and how many reshares completed.
    Sssg {
        #[arg(long, default_value = DEFAULT_RPC)]
        rpc: String,
        #[arg(long)]
        json: bool,
    },
    /// An account's validator entry (bond, status, records) and pending unbondings.
    Staking {
        address: String,
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
    Transfer {
        /// Recipient address (0x + 40 hex digits).
        #[arg(long)]
        to: String,
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Bond stake from the sender's account for a node's consensus key: the node becomes a
    /// validator candidate and joins the set at the next epoch boundary whose plan includes it.
    Bond {
        /// The home of the node to bond (its node_key.json signs the consent, its config.json
        /// gives the p2p address).
        #[arg(long)]
        node_home: PathBuf,
        #[arg(long)]
        amount: String,
        /// Override the p2p address registered for the node (host:port).
        #[arg(long)]
        p2p_address: Option<String>,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Start returning stake (after the unbonding period).
    Unbond {
        /// Base units, or `all` (everything bonded when the transaction applies: rewards
        /// compound into the bond every block).
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Leave jail once the jail period is over.
    Unjail {
        #[command(flatten)]
        send: SendArgs,
    },
    /// Bond stake from the sender's account as a compute node reachable at `--endpoint`
    /// (http:// or https://); a fully unbonded node may register again.
    RegisterCompute {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Start returning a compute node's bond (after the unbonding period).
    UnbondCompute {
        #[arg(long)]
        amount: String,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Post attestation collateral (dcap-qvl JSON, e.g. from a PCCS) for a platform, with a
    /// quote from that platform that verifies with it; the chain keeps it if it is newer in
    /// every part than what it holds.
    PostCollateral {
        /// The collateral file (JSON).
        #[arg(long)]
        collateral: PathBuf,
        /// A quote of the platform (binary).
        #[arg(long)]
        witness: PathBuf,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Raise a contract's key generation (its owner; or the chain's governance account, which
    /// with --exposed-measurement rotates every contract whose key reached enclaves of that
    /// identity, one transaction each). Old generations stay derivable for old data; the next
    /// execution re-encrypts the state under the new one.
    RotateKey {
        #[arg(long, required_unless_present = "exposed_measurement", conflicts_with = "exposed_measurement")]
        cid: Option<String>,
        /// An enclave identity named by a TEE advisory (64 hex digits).
        #[arg(long)]
        exposed_measurement: Option<String>,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Report a compute fault: two outcomes of one request on one state, signed by enclaves of
    /// one compute node, that computed different things. Each file holds the hex of an
    /// outcome's encoding followed by the enclave's 64-byte signature. The node is slashed and
    /// jailed, the enclaves' identities flagged (`query exposure --measurement`); the reporter
    /// earns the reporter's share.
    ReportComputeFault {
        #[arg(long)]
        first: PathBuf,
        #[arg(long)]
        second: PathBuf,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Submit equivocation evidence (hex of two conflicting signed votes or proposals).
    SubmitEvidence {
        #[arg(long)]
        evidence: String,
        #[command(flatten)]
        send: SendArgs,
    },
}

/// What every transaction command takes.
#[derive(Args, Clone, Debug)]
pub struct SendArgs {
    /// Key name in <home>/keys.
    #[arg(long)]
    pub from: String,
    #[arg(long, default_value_t = 1)]
    pub gas_price: u64,
    /// Defaults to the gas the action uses.
    #[arg(long)]
    pub gas_limit: Option<u64>,
    /// Defaults to the sender's next nonce counting its pending transactions.
    #[arg(long)]
    pub nonce: Option<u64>,
    /// Wait until the transaction is committed (up to 30 s).
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
        QueryCommand::Proof { account, key, validator, verify, anchor, rpc, json: j } => {
            return query_proof(account, key, validator, verify.then_some(anchor), &rpc, j);
        }
        QueryCommand::Validators { rpc, json: j } => {
            let v = RpcClient::new(&rpc)?.call("validators", json!([]))?;
            print(j, &v, |v| {
                let mut out = format!("epoch {} (from height {}), {} active:", v["epoch"], v["epoch_start"], v["active"].as_array().map_or(0, Vec::len));
                for m in v["active"].as_array().into_iter().flatten() {
                    out += &format!("\n  #{} {} operator {} N0 {}", m["index"], m["consensus_key"].as_str().unwrap_or(""), m["operator"].as_str().unwrap_or("-"), m["coin_base"]);
                }
                out += "\nregistered:";
                for r in v["registered"].as_array().into_iter().flatten() {
                    out += &format!("\n  {} {} bonded {} ({})", r["operator"].as_str().unwrap_or(""), r["status"].as_str().unwrap_or(""), r["bonded"].as_str().unwrap_or(""), r["p2p_address"].as_str().unwrap_or(""));
                }
                out
            });
        }
        QueryCommand::Compute { rpc, json: j } => {
            let v = RpcClient::new(&rpc)?.call("compute_nodes", json!([]))?;
            print(j, &v, |v| {
                let nodes = v["compute_nodes"].as_array().cloned().unwrap_or_default();
                let mut out =
                    format!("{} compute node(s) at height {} (minimum bond {}):", nodes.len(), v["height"], v["min_bond"].as_str().unwrap_or(""));
                for n in &nodes {
                    out += &format!(
                        "\n  {} {} bonded {} {}",
                        n["operator"].as_str().unwrap_or(""),
                        n["endpoint"].as_str().unwrap_or(""),
                        n["bonded"].as_str().unwrap_or(""),
                        if n["in_service"] == true { "in service" } else { "not in service" }
                    );
                    for e in n["enclaves"].as_array().into_iter().flatten() {
                        out += &format!(
                            "\n    enclave {} {} identity {} {} until height {}{}",
                            e["signing_key"].as_str().unwrap_or(""),
                            e["tee"].as_str().unwrap_or(""),
                            e["measurement"].as_str().unwrap_or(""),
                            e["tcb_status"].as_str().unwrap_or(""),
                            e["expires_at"],
                            if e["current"] == true { "" } else { " (lapsed)" }
                        );
                    }
                }
                out
            });
        }
        QueryCommand::Releases { cid, measurement, enclave, page, rpc, json: j } => {
            let mut p = serde_json::Map::new();
            for (name, value) in [("cid", cid), ("measurement", measurement), ("enclave", enclave)] {
                if let Some(v) = value {
                    p.insert(name.into(), json!(v));
                }
            }
            p.insert("page".into(), json!(page));
            let v = RpcClient::new(&rpc)?.call("releases", json!([p]))?;
            print(j, &v, |v| {
                let mut out = format!(
                    "{} release(s) at height {} (page {}, {} per page)",
                    v["count"], v["height"], v["page"], v["page_size"]
                );
                for r in v["releases"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "\n  block {:>6}  {} g{} {}  enclave {}… ({} {}, TCB eval {})  by {} member(s)",
                        r["height"],
                        r["cid"].as_str().unwrap_or(""),
                        r["generation"],
                        r["purpose"].as_str().unwrap_or(""),
                        r["enclave"].as_str().unwrap_or("").get(..16).unwrap_or(""),
                        r["measurement"].as_str().unwrap_or("").get(..16).unwrap_or(""),
                        r["tcb_status"].as_str().unwrap_or(""),
                        r["tcb_evaluation_data_number"],
                        r["members"].as_array().map_or(0, Vec::len),
                    ));
                }
                out
            });
        }
        QueryCommand::Exposure { measurement, tcb_below, rpc, json: j } => {
            let p = match (measurement, tcb_below) {
                (Some(m), _) => json!({"measurement": m}),
                (None, Some(n)) => json!({"tcb_below": n}),
                (None, None) => anyhow::bail!("--measurement or --tcb-below"),
            };
            let v = RpcClient::new(&rpc)?.call("exposure", json!([p]))?;
            print(j, &v, |v| {
                let exposed = v["exposed"].as_array().cloned().unwrap_or_default();
                let mut out = format!("{} contract key(s) exposed at height {}", exposed.len(), v["height"]);
                for e in exposed {
                    out.push_str(&format!("\n  {} generation {}", e["cid"].as_str().unwrap_or(""), e["generation"]));
                }
                out
            });
        }
        QueryCommand::DataUsage { owner, page, rpc, json: j } => {
            let owner: Address = owner.parse().map_err(|e| anyhow::anyhow!("--owner: {e}"))?;
            let v = RpcClient::new(&rpc)?.call("data_usage", json!([{"owner": owner.to_string(), "page": page}]))?;
            print(j, &v, |v| {
                let uses = v["uses"].as_array().cloned().unwrap_or_default();
                let mut out = format!("{} use(s) of {}'s data at height {} (page {}):", v["count"], owner, v["height"], page);
                for u in uses {
                    out.push_str(&format!(
                        "
  block {}  contract {}  request {}  data {}  paid {}",
                        u["block_height"],
                        u["cid"].as_str().unwrap_or(""),
                        u["request_id"].as_str().unwrap_or(""),
                        u["data"].as_str().unwrap_or(""),
                        u["amount"].as_str().unwrap_or("")
                    ));
                }
                out
            });
        }
        QueryCommand::Sssg { rpc, json: j } => {
            let v = RpcClient::new(&rpc)?.call("sssg", json!([]))?;
            print(j, &v, |v| {
                let mut out = match v["serving"].as_object() {
                    Some(g) => format!(
                        "epoch {}: group of {} (threshold {}) from ceremony {}, serving since epoch {}\n  master public key {}",
                        v["epoch"],
                        g["members"].as_array().map_or(0, Vec::len),
                        g["threshold"],
                        g["round"],
                        g["epoch"],
                        g["master_public_key"].as_str().unwrap_or("")
                    ),
                    None => format!("epoch {}: no group serves yet (the first DKG is under way)", v["epoch"]),
                };
                for m in v["serving"]["members"].as_array().into_iter().flatten() {
                    out += &format!("\n  member {}", m.as_str().unwrap_or(""));
                }
                if let Some(c) = v["ceremony"].as_object() {
                    out += &format!(
                        "\n{} {} under way: {} of {} dealer logs on chain, due by height {}",
                        if c["reshare"] == true { "reshare" } else { "DKG" },
                        c["round"],
                        c["logs"],
                        c["dealers"],
                        c["deadline"]
                    );
                }
                out += &format!("\nreshares {}, failed ceremonies {}, epochs extended {}", v["reshares"], v["ceremonies_failed"], v["epochs_extended"]);
                out
            });
        }
        QueryCommand::Staking { address, rpc, json: j } => {
            let address: Address = address.parse().map_err(|e| anyhow::anyhow!("address: {e}"))?;
            let v = RpcClient::new(&rpc)?.call("staking", json!([address.to_string()]))?;
            print(j, &v, |v| {
                let validator = match v["validator"].as_object() {
                    Some(x) => format!("{} validator, bonded {}, rewards {}, slashed {}", x["status"].as_str().unwrap_or(""), x["bonded"].as_str().unwrap_or(""), x["rewards"].as_str().unwrap_or(""), x["slashed"].as_str().unwrap_or("")),
                    None => "not a validator".to_string(),
                };
                format!("{}: balance {}, {validator}, {} unbonding", v["address"].as_str().unwrap_or(""), v["balance"].as_str().unwrap_or(""), v["unbonding"].as_array().map_or(0, Vec::len))
            });
        }
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

fn query_proof(
    account: Option<String>,
    key: Option<String>,
    validator: Option<String>,
    verify: Option<super::light::AnchorArgs>,
    rpc: &str,
    json_out: bool,
) -> anyhow::Result<std::process::ExitCode> {
    let mut client = RpcClient::new(rpc)?;
    // The state key asked for, computed here: a proof of another key proves nothing about it.
    let (params, expected_key) = match (&account, &key, &validator) {
        (Some(address), _, _) => {
            let address: Address = address.parse().map_err(|e| anyhow::anyhow!("--account: {e}"))?;
            (json!([address.to_string()]), tcp_state::accounts::account_key(&address))
        }
        (None, Some(key), _) => {
            let bytes = tcp_types::hex::decode(key).map_err(|e| anyhow::anyhow!("--key: {e}"))?;
            let key_bytes: [u8; 32] = bytes.try_into().map_err(|_| anyhow::anyhow!("--key: expected 32 bytes"))?;
            (json!([{"key": key}]), key_bytes)
        }
        (None, None, Some(operator)) => {
            let address: Address = operator.parse().map_err(|e| anyhow::anyhow!("--validator: {e}"))?;
            (json!([{"validator": address.to_string()}]), tcp_state::staking::validator_key(&address))
        }
        (None, None, None) => bail!("give --account, --key or --validator"),
    };
    let mut proof_json = client.call("state_proof", params)?;
    let (height, claimed_root, proof) = tcp_node::proof::proof_from_json(&proof_json).map_err(|e| anyhow::anyhow!("the node's proof is malformed: {e}"))?;
    let mut verified = None;
    if let Some(anchor_args) = verify {
        // The header through the light client: its φ against the group key, so the state root
        // is the chain's, not the RPC's word.
        let (light, anchor) = super::light::trust_anchor(&mut client, &anchor_args)?;
        let outcome = super::light::fetch_verified_header(&mut client, &light, height)
            .map_err(|e| format!("header {height}: {e:#}"))
            .and_then(|header| {
                if proof.key != expected_key {
                    return Err(format!("the proof is of key {}, not of the key asked for", tcp_types::hex::encode(&proof.key)));
                }
                if header.state_root().0 != claimed_root {
                    return Err(format!(
                        "the proof is for root {}, the verified header {height} commits {}",
                        tcp_types::hex::encode(&claimed_root),
                        header.state_root()
                    ));
                }
                light.verify_state_proof(&header, &proof).map(|_| ()).map_err(|e| e.to_string())
            });
        if outcome.is_ok() {
            // What is shown is decoded here from the proven value, not the RPC's rendering.
            proof_json = tcp_node::proof::proof_to_json(height, &claimed_root, &proof);
        }
        proof_json["verified"] = json!(outcome.is_ok());
        proof_json["trust_anchor"] = json!(anchor);
        if let Err(e) = &outcome {
            proof_json["verify_error"] = json!(e);
        }
        verified = Some(outcome);
    }
    print(json_out, &proof_json, |v| {
        let what = match v["proof_type"].as_str() {
            Some("inclusion") => match (v["account"].as_object(), v["validator"].as_object()) {
                (Some(a), _) => format!("account {}: balance {}, nonce {}", a["address"].as_str().unwrap_or(""), a["balance"].as_str().unwrap_or(""), a["nonce"]),
                (None, Some(x)) => format!("validator {}: {}, bonded {}", x["operator"].as_str().unwrap_or(""), x["status"].as_str().unwrap_or(""), x["bonded"].as_str().unwrap_or("")),
                (None, None) => format!("value {}", v["value"].as_str().unwrap_or("")),
            },
            _ => "absent".to_string(),
        };
        let check = match &verified {
            None => String::new(),
            Some(Ok(())) => format!(
                "\nverified: header {height} by its finality signature (1 pairing, trust anchor: {}), the proof against its state root",
                v["trust_anchor"].as_str().unwrap_or("")
            ),
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

/// How [`send_action`] sends.
pub struct SendOptions {
    /// Defaults to the sender's next nonce counting its pending transactions.
    pub nonce: Option<u64>,
    pub gas_price: u64,
    /// Defaults to the gas the action uses.
    pub gas_limit: Option<u64>,
    /// Wait until committed (up to 30 s); a dropped transaction is an error with its reason.
    pub wait: bool,
}

/// Sign `action` with `key` and send it; the answer names the transaction (and its receipt
/// when waiting).
pub fn send_action(
    client: &mut RpcClient,
    key: &tcp_state::AccountKey,
    chain_id: tcp_types::ChainId,
    action: Action,
    kind: &str,
    options: SendOptions,
) -> anyhow::Result<Value> {
    let nonce = match options.nonce {
        Some(n) => n,
        None => client.call("account", json!([key.address().to_string()]))?["pending_nonce"].as_u64().context("account answer lacks pending_nonce")?,
    };
    let gas_limit = options.gas_limit.unwrap_or_else(|| tcp_state::accounts::gas_of(&action));
    let signed = Transaction { chain_id, nonce, gas_price: options.gas_price, gas_limit, action }.sign(key);
    let hash = client.call("send_transaction", json!([tcp_types::hex::encode(&signed.encode())])).with_context(|| format!("{kind} refused"))?;
    let hash = hash.as_str().context("send_transaction answered without a hash")?.to_string();
    let mut out = json!({"type": kind, "hash": hash, "from": key.address().to_string(), "nonce": nonce});
    if options.wait {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let receipt = client.call("receipt", json!([hash]))?;
            if receipt["status"] == "dropped" {
                bail!("{kind} {hash} was dropped: {}", receipt["reason"].as_str().unwrap_or("no reason given"));
            }
            if !receipt.is_null() {
                out["receipt"] = receipt;
                break;
            }
            if Instant::now() > deadline {
                bail!("{kind} {hash} was accepted but not committed within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(out)
}

pub fn tx(command: TxCommand) -> anyhow::Result<std::process::ExitCode> {
    let (send, kind) = match &command {
        TxCommand::Transfer { send, .. } => (send.clone(), "transfer"),
        TxCommand::Bond { send, .. } => (send.clone(), "bond"),
        TxCommand::Unbond { send, .. } => (send.clone(), "unbond"),
        TxCommand::Unjail { send } => (send.clone(), "unjail"),
        TxCommand::SubmitEvidence { send, .. } => (send.clone(), "submit-evidence"),
        TxCommand::RegisterCompute { send, .. } => (send.clone(), "register-compute"),
        TxCommand::UnbondCompute { send, .. } => (send.clone(), "unbond-compute"),
        TxCommand::PostCollateral { send, .. } => (send.clone(), "post-collateral"),
        TxCommand::RotateKey { send, .. } => (send.clone(), "rotate-key"),
        TxCommand::ReportComputeFault { send, .. } => (send.clone(), "report-compute-fault"),
    };
    let key = KeyStore::open(&home_dir(&send.home)?)?.load(&send.from)?;
    let mut client = RpcClient::new(&send.rpc)?;
    let status = client.call("status", json!([]))?;
    let chain_id = tcp_types::ChainId::new(status["chain_id"].as_str().unwrap_or_default()).map_err(|e| anyhow::anyhow!("node's chain id: {e}"))?;
    let amount = |text: &str| -> anyhow::Result<u128> { text.parse().context("--amount must be a non-negative integer") };
    let options = || SendOptions { nonce: send.nonce, gas_price: send.gas_price, gas_limit: send.gas_limit, wait: send.wait };
    if let TxCommand::RotateKey { exposed_measurement: Some(measurement), .. } = &command {
        // Governance after an advisory: every (contract) whose key reached that identity.
        let exposure = client.call("exposure", json!([{"measurement": measurement}]))?;
        if exposure["complete"] != true {
            bail!("the exposure list is longer than one answer holds: rotate the rest with --cid");
        }
        let mut cids: Vec<String> = exposure["exposed"].as_array().into_iter().flatten().filter_map(|e| e["cid"].as_str().map(str::to_string)).collect();
        cids.sort();
        cids.dedup();
        let mut sent = Vec::new();
        for (i, cid) in cids.iter().enumerate() {
            let cid_bytes: [u8; 32] = tcp_types::hex::decode(cid).ok().and_then(|b| b.try_into().ok()).context("the exposure list names a malformed contract id")?;
            let mut opts = options();
            opts.nonce = send.nonce.map(|n| n + i as u64);
            sent.push(send_action(&mut client, &key, chain_id.clone(), Action::RotateKey { cid: cid_bytes }, kind, opts)?);
        }
        let out = json!({"measurement": measurement, "rotated": cids, "transactions": sent});
        print(send.json, &out, |v| format!("rotated {} contract key(s) exposed to {measurement}", v["rotated"].as_array().map_or(0, Vec::len)));
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let action = match command {
        TxCommand::ReportComputeFault { first, second, .. } => {
            let read = |path: &PathBuf| -> anyhow::Result<(Box<tcp_state::ComputeOutcome>, [u8; 64])> {
                let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                let bytes = tcp_types::hex::decode(text.trim().trim_start_matches("0x")).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                let Some(split) = bytes.len().checked_sub(64) else { bail!("{}: shorter than a signature", path.display()) };
                let outcome = tcp_state::ComputeOutcome::decode(&bytes[..split]).map_err(|e| anyhow::anyhow!("{}: the outcome: {e}", path.display()))?;
                Ok((Box::new(outcome), bytes[split..].try_into().expect("64 bytes")))
            };
            let ((first, first_signature), (second, second_signature)) = (read(&first)?, read(&second)?);
            Action::ComputeFault { first, first_signature, second, second_signature }
        }
        TxCommand::RotateKey { cid, .. } => {
            let cid = cid.context("--cid")?;
            let cid: [u8; 32] = tcp_types::hex::decode(cid.trim_start_matches("0x")).ok().and_then(|b| b.try_into().ok()).context("--cid: 64 hex digits")?;
            Action::RotateKey { cid }
        }
        TxCommand::Transfer { to, amount: a, .. } => {
            Action::Transfer { to: to.parse().map_err(|e| anyhow::anyhow!("--to: {e}"))?, amount: amount(&a)? }
        }
        TxCommand::Bond { node_home, amount: a, p2p_address, .. } => {
            let secrets = tcp_node::keystore::NodeSecrets::load(&node_home.join("node_key.json")).context("reading the node's key")?;
            let p2p = match p2p_address {
                Some(p) => p,
                None => tcp_node::genesis::NodeConfig::load(&node_home)?.p2p_address.to_string(),
            };
            use commonware_cryptography::Signer as _;
            let possession = tcp_state::staking::sign_bond(&secrets.consensus_key, &chain_id, &key.address());
            use tcp_beacon::validator_key::{public_key, public_key_bytes, sign_possession};
            Action::Bond {
                consensus_key: secrets.consensus_key.public_key(),
                bls_key: public_key_bytes(&public_key(&secrets.bls_key)),
                p2p,
                amount: amount(&a)?,
                possession,
                bls_possession: sign_possession(&secrets.bls_key, &chain_id, &key.address().0),
            }
        }
        TxCommand::Unbond { amount: a, .. } if a == "all" => Action::Unbond { amount: tcp_state::transaction::UNBOND_ALL },
        TxCommand::Unbond { amount: a, .. } => Action::Unbond { amount: amount(&a)? },
        TxCommand::Unjail { .. } => Action::Unjail,
        TxCommand::SubmitEvidence { evidence, .. } => {
            let bytes = tcp_types::hex::decode(evidence.trim()).map_err(|e| anyhow::anyhow!("--evidence: {e}"))?;
            tcp_consensus::Evidence::decode(&bytes).map_err(|e| anyhow::anyhow!("--evidence: {e}"))?;
            Action::SubmitEvidence { evidence: bytes }
        }
        TxCommand::RegisterCompute { endpoint, amount: a, .. } => {
            tcp_state::compute::check_endpoint(&endpoint).map_err(|e| anyhow::anyhow!("--endpoint: {e}"))?;
            Action::RegisterCompute { endpoint, amount: amount(&a)? }
        }
        TxCommand::UnbondCompute { amount: a, .. } => Action::UnbondCompute { amount: amount(&a)? },
        TxCommand::PostCollateral { collateral, witness, .. } => {
            let read = |path: &PathBuf, limit: usize| -> anyhow::Result<Vec<u8>> {
                let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                if bytes.len() > limit {
                    bail!("{} is {} bytes, more than the {limit} a posting may carry", path.display(), bytes.len());
                }
                Ok(bytes)
            };
            Action::PostCollateral {
                collateral: read(&collateral, tcp_dkmp::collateral::MAX_COLLATERAL_BYTES)?,
                witness: read(&witness, tcp_dkmp::collateral::MAX_WITNESS_BYTES)?,
            }
        }
    };
    let out = send_action(&mut client, &key, chain_id, action, kind, options())?;
    print(send.json, &out, |v| match v.get("receipt") {
        Some(r) => format!("{kind} {} committed in block {} (fee {})", v["hash"].as_str().unwrap_or(""), r["block_height"], r["fee"].as_str().unwrap_or("")),
        None => format!("{kind} {} submitted", v["hash"].as_str().unwrap_or("")),
    });
    Ok(std::process::ExitCode::SUCCESS)
}
