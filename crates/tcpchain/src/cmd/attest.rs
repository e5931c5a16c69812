//! `tcpchain attest`: remote attestation tools. `selftest` starts the enclave process with the
//! configured quoting backend, asks it for a quote over a fresh challenge and verifies the
//! quote on the chain's one verification path, saying plainly when the quote is simulated.
//! Also the development PKI `tcpchain init` makes for a local network.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng as _;
use tcp_attestation::{AttestationError, DevPki, PlatformTcb, Policy, Registration, TcbRank, TsmBackend, VerifiedRegistration, Verifier};
use tcp_enclave::channel::{Request, Response};
use tcp_enclave::host::{DEFAULT_REQUEST_TIMEOUT, EnclaveHost};
use tcp_enclave::process::{BackendChoice, EnclaveArgs};
use tcp_node::genesis::{AttestationConfig, ChainSpec, NodeConfig};

/// The file a development node's simulated platform lives in (0600).
pub const DEV_PLATFORM_FILE: &str = "dev-platform.json";
/// The FMSPC development platforms report.
const DEV_FMSPC: [u8; 6] = [0x00, 0x90, 0x6e, 0xd5, 0x00, 0x00];

#[derive(Subcommand)]
pub enum AttestCommand {
    /// Generate a quote with the configured backend and verify it.
    Selftest(SelftestArgs),
    /// Verify any quote file (SGX or TDX, binary or hex) with its collateral on the chain's one
    /// verification path; print the TEE, identity, TCB status and advisories. Exit 1 when it
    /// does not verify, with the reason.
    Verify(VerifyArgs),
    /// Print the identity a chain's policy must allow for the enclave that made a quote.
    Identity(IdentityArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The quote: raw bytes, or hex (whitespace and a 0x prefix allowed).
    #[arg(long)]
    quote: PathBuf,
    /// Its PCS collateral (dcap-qvl's QuoteCollateralV3 JSON).
    #[arg(long)]
    collateral: PathBuf,
    /// Verify as at this time (Unix seconds) instead of now.
    #[arg(long)]
    at: Option<u64>,
    /// Accept Intel's root CA only (the default without --genesis).
    #[arg(long, conflicts_with = "genesis")]
    intel: bool,
    /// Use this chain's roots and policy (measurements, minimum TCB, debug).
    #[arg(long)]
    genesis: Option<PathBuf>,
    /// Allow only these identities (hex, 32 bytes; repeatable). Without it and without
    /// --genesis, any identity verifies and is printed.
    #[arg(long = "measurement")]
    measurements: Vec<String>,
    /// Refuse collateral older than this TCB evaluation data number (Intel raises it at each
    /// TCB recovery), with or without a policy; with --genesis it replaces the chain's minimum.
    #[arg(long)]
    min_tcb_evaluation_data_number: Option<u32>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct IdentityArgs {
    /// The quote: raw bytes, or hex.
    #[arg(long)]
    quote: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// Hardware if the machine has configfs-tsm, else simulated.
    Auto,
    Simulated,
    Tsm,
}

#[derive(Args)]
pub struct SelftestArgs {
    /// A node home (from `tcpchain init`): use its genesis's attestation policy and its
    /// development platform. Without it, an ephemeral development PKI is made for the test.
    #[arg(long)]
    home: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
    /// The TEE the simulated backend plays.
    #[arg(long, default_value = "sgx", value_parser = ["sgx", "tdx"])]
    tee: String,
    /// For the tsm backend: the PCCS collateral (QuoteCollateralV3 JSON) for this platform.
    #[arg(long)]
    collateral: Option<PathBuf>,
}

/// The enclave program: `TCP_ENCLAVE_BIN`, else `tcp-enclave` beside this binary, else this
/// binary's own `enclave` subcommand (the same code; its measurement is this binary's hash).
pub fn enclave_program() -> anyhow::Result<(PathBuf, Vec<String>)> {
    if let Some(path) = std::env::var_os("TCP_ENCLAVE_BIN") {
        return Ok((PathBuf::from(path), Vec::new()));
    }
    let me = std::env::current_exe().context("locating this binary")?;
    let sibling = me.with_file_name("tcp-enclave");
    if sibling.is_file() {
        return Ok((sibling, Vec::new()));
    }
    Ok((me, vec!["enclave".to_string()]))
}

/// SHA-256 of the enclave program's binary: the measurement its quotes carry.
fn measure(program: &Path) -> anyhow::Result<[u8; 32]> {
    let binary = std::fs::read(program).with_context(|| format!("reading {}", program.display()))?;
    Ok(tcp_crypto::sha256(&[&binary]).0)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A development PKI for a new local network: the genesis's attestation policy (its root, the
/// enclave's measurement) and one simulated platform per node home, written 0600.
pub fn init_dev_attestation(homes: &[PathBuf], rng: &mut ChaCha20Rng) -> anyhow::Result<AttestationConfig> {
    let now = unix_now();
    // Valid from a day back (clock skew between machines) for five years.
    let pki = DevPki::generate(rng, now.saturating_sub(86_400), Duration::from_secs(5 * 365 * 86_400))?;
    for home in homes {
        let platform = pki.issue_platform(rng, PlatformTcb::default(), DEV_FMSPC)?;
        tcp_node::keystore::write_private_file(&home.join(DEV_PLATFORM_FILE), platform.to_json().as_bytes(), "development platform")?;
    }
    Ok(AttestationConfig {
        production: false,
        root_cas: vec![tcp_types::hex::encode(&pki.root_ca_der())],
        measurements: dev_identities(measure(&enclave_program()?.0)?).iter().map(|id| tcp_types::hex::encode(id)).collect(),
        min_tcb: TcbRank::UpToDate.intel_name().to_string(),
        ..AttestationConfig::default()
    })
}

/// What a development chain allows for the enclave binary measured `measurement`: itself as an
/// SGX enclave, and the simulated TD that runs it.
fn dev_identities(measurement: [u8; 32]) -> Vec<[u8; 32]> {
    let enclave = tcp_attestation::EnclaveIdentity { measurement, debug: false };
    vec![measurement, tcp_attestation::simulated_identity(tcp_attestation::Tee::Tdx, &enclave)]
}

pub fn run(command: AttestCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        AttestCommand::Selftest(args) => selftest(args),
        AttestCommand::Verify(args) => verify(args),
        AttestCommand::Identity(args) => identity(args),
    }
}

fn selftest(args: SelftestArgs) -> anyhow::Result<std::process::ExitCode> {
    let (program, prefix) = enclave_program()?;
    let measurement = measure(&program)?;
    let collateral = args.collateral.clone().unwrap_or_else(|| PathBuf::from("pccs-collateral.json"));
    let use_tsm = match args.backend {
        BackendArg::Tsm => true,
        BackendArg::Simulated => false,
        BackendArg::Auto => TsmBackend::detect(collateral.clone()).is_some(),
    };
    // The policy and, for the simulated backend, the platform: a node's, or ephemeral ones.
    let mut scratch = None;
    let (verifier, platform_file, source, chain_id) = match &args.home {
        Some(home) => {
            let config = NodeConfig::load(home)?;
            let genesis = if config.genesis.is_absolute() { config.genesis.clone() } else { home.join(&config.genesis) };
            let spec = ChainSpec::load(&genesis)?;
            let verifier = spec.genesis.attestation.verifier().map_err(anyhow::Error::msg)?;
            let kind = if spec.genesis.attestation.production { "production" } else { "development" };
            let chain_id = spec.chain_id.clone();
            (
                verifier,
                home.join(DEV_PLATFORM_FILE),
                format!("the {kind} chain {} (genesis {})", spec.genesis.chain_id, genesis.display()),
                chain_id,
            )
        }
        None => {
            let dir = std::env::temp_dir().join(format!("tcp-attest-selftest-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            scratch = Some(Scratch(dir.clone()));
            let mut seed = zeroize::Zeroizing::new([0u8; 32]);
            crate::cmd::init::getrandom_fill(seed.as_mut())?;
            let mut rng = ChaCha20Rng::from_seed(*seed);
            let pki = DevPki::generate(&mut rng, unix_now().saturating_sub(3600), Duration::from_secs(86_400))?;
            let platform = pki.issue_platform(&mut rng, PlatformTcb::default(), DEV_FMSPC)?;
            let path = dir.join(DEV_PLATFORM_FILE);
            tcp_node::keystore::write_private_file(&path, platform.to_json().as_bytes(), "development platform")?;
            let policy = Policy { measurements: dev_identities(measurement), ..Policy::default() };
            let verifier = Verifier::new(vec![pki.root_ca_der()], policy, false)?;
            let chain_id = tcp_types::ChainId::new("tcp-selftest").expect("a valid chain id");
            (verifier, path, "an ephemeral development PKI (no --home given)".to_string(), chain_id)
        }
    };
    let enclave_args = if use_tsm {
        EnclaveArgs { backend: BackendChoice::Tsm, collateral: Some(collateral), ..Default::default() }
    } else {
        if !platform_file.is_file() {
            bail!(
                "{} does not exist: a simulated backend needs the node's development platform (made by `tcpchain init`)",
                platform_file.display()
            );
        }
        EnclaveArgs {
            backend: BackendChoice::Simulated,
            tee: Some(args.tee.clone()),
            dev_platform: Some(platform_file),
            ..Default::default()
        }
    };

    println!("policy:      {source}");
    println!("enclave:     {} {}", program.display(), prefix.join(" "));
    println!("measurement: {}", tcp_types::hex::encode(&measurement));
    let mut host = EnclaveHost::start_program(&program, prefix, enclave_args, DEFAULT_REQUEST_TIMEOUT)?;
    let Response::Hello { measurement: reported, enclave_key, signing_key, backend, simulated, .. } = host.request(&Request::Hello)? else {
        bail!("the enclave did not answer Hello");
    };
    println!("backend:     {backend}");
    if simulated {
        println!("             SIMULATED: this machine's quotes prove nothing about hardware; a production chain refuses them");
    }
    if reported != measurement {
        bail!(
            "the enclave reports measurement {} but its binary hashes to {}",
            tcp_types::hex::encode(&reported),
            tcp_types::hex::encode(&measurement)
        );
    }
    // A registration, as the chain asks for one: a fresh value only the chain could choose.
    let mut freshness = [0u8; 32];
    crate::cmd::init::getrandom_fill(&mut freshness)?;
    // A self-test pins no real chain's keys; the enclave process is discarded afterwards.
    let chain_keys = tcp_attestation::ChainKeys { group_key: [0; 96], master_key: [0; 96] };
    let registration = Registration { chain_id: chain_id.clone(), freshness, chain_keys: chain_keys.digest(), signing_key, x25519_key: enclave_key };
    let started = Instant::now();
    let (quote, collateral) = match host.request(&Request::Register { chain_id: chain_id.as_str().to_string(), freshness, chain_keys })? {
        Response::Attestation { quote, collateral } => (quote, collateral),
        Response::Error { message } => bail!("the enclave could not quote: {message}"),
        other => bail!("unexpected answer {other:?}"),
    };
    let quoted = started.elapsed();
    let started = Instant::now();
    let verdict = verifier.verify_registration(&quote, &collateral, unix_now(), &registration);
    let verified = started.elapsed();
    // The same quote must not pass for another freshness value.
    let replay =
        verifier.verify_registration(&quote, &collateral, unix_now(), &Registration { freshness: [0xff; 32], ..registration.clone() });
    drop(host);
    drop(scratch);
    match verdict {
        Ok(VerifiedRegistration { attested, .. }) => {
            println!(
                "quote:       {} bytes in {:.1} ms; verified in {:.1} ms",
                quote.len(),
                quoted.as_secs_f64() * 1e3,
                verified.as_secs_f64() * 1e3
            );
            println!("tcb status:  {}{}", attested.tcb_status, if attested.debug { " (debug enclave)" } else { "" });
            if replay.as_ref().err() != Some(&AttestationError::ReportDataMismatch) {
                bail!("the quote was not bound to its freshness value: {replay:?}");
            }
            println!(
                "report data: a registration for {chain_id}: signing key {}…, X25519 key {}… and the freshness value; a replay is refused",
                tcp_types::hex::encode(&signing_key[..8]),
                tcp_types::hex::encode(&enclave_key[..8])
            );
            println!("selftest:    PASSED{}", if simulated { " (simulated backend)" } else { "" });
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("selftest:    FAILED: {e}");
            Ok(std::process::ExitCode::from(1))
        }
    }
}

/// A quote file's bytes: raw, or hex text (whitespace and a leading 0x ignored).
fn read_quote(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text: String = String::from_utf8_lossy(&bytes).split_whitespace().collect();
    let text = text.strip_prefix("0x").unwrap_or(&text);
    if !text.is_empty() && text.len() % 2 == 0 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return tcp_types::hex::decode(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    Ok(bytes)
}

fn tee_name(tee: tcp_attestation::Tee) -> &'static str {
    match tee {
        tcp_attestation::Tee::Sgx => "SGX",
        tcp_attestation::Tee::Tdx => "TDX",
    }
}

fn verify(args: VerifyArgs) -> anyhow::Result<std::process::ExitCode> {
    let quote = read_quote(&args.quote)?;
    let collateral = std::fs::read(&args.collateral).with_context(|| format!("reading {}", args.collateral.display()))?;
    let at = args.at.unwrap_or_else(unix_now);
    let measurements = args
        .measurements
        .iter()
        .map(|m| {
            tcp_types::hex::decode(m)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| anyhow::anyhow!("--measurement {m:?} is not 32 bytes of hex"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (verifier, source) = match &args.genesis {
        Some(path) => {
            let spec = ChainSpec::load(path)?;
            let verifier = spec.genesis.attestation.verifier().map_err(anyhow::Error::msg)?;
            (verifier, format!("the roots and policy of chain {} ({})", spec.genesis.chain_id, path.display()))
        }
        None => {
            // --measurement alone judges by the strictest policy naming those identities;
            // without it the quote is reported, whatever it says.
            let policy = if measurements.is_empty() {
                Policy {
                    min_tcb: TcbRank::Revoked,
                    allow_debug: true,
                    allow_smt: true,
                    allow_dynamic_platform: true,
                    allow_cached_keys: true,
                    ..Policy::default()
                }
            } else {
                Policy { measurements: measurements.clone(), ..Policy::default() }
            };
            (Verifier::new(vec![tcp_attestation::INTEL_ROOT_CA_DER.to_vec()], policy, false)?, "Intel's root CA".to_string())
        }
    };
    let quote_id = tcp_attestation::quote::quote_id(&quote).ok().map(|id| tcp_types::hex::encode(&id));
    let verdict = verifier.verify_quote(&quote, &collateral, at).and_then(|attested| {
        let mut policy = verifier.policy().clone();
        if !measurements.is_empty() {
            policy.measurements = measurements.clone();
        }
        if let Some(minimum) = args.min_tcb_evaluation_data_number {
            policy.min_tcb_evaluation_data_number = Some(minimum);
        }
        // Without a chain's policy or --measurement, the identity is reported, not judged (but
        // for the minimum evaluation number, when one is given).
        if args.genesis.is_some() || !measurements.is_empty() {
            policy.check(&attested)?;
        } else if let Some(minimum) = args.min_tcb_evaluation_data_number
            && attested.tcb_evaluation_data_number < minimum
        {
            return Err(AttestationError::TcbEvaluationTooOld { number: attested.tcb_evaluation_data_number, minimum });
        }
        Ok(attested)
    });
    match verdict {
        Ok(attested) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "verified": true,
                        "policy_applied": args.genesis.is_some() || !measurements.is_empty(),
                        "tee": tee_name(attested.tee),
                        "identity": tcp_types::hex::encode(&attested.measurement),
                        "signer": attested.signer.map(|s| tcp_types::hex::encode(&s)),
                        "tcb_status": attested.tcb_status,
                        "advisory_ids": attested.advisory_ids,
                        "tcb_evaluation_data_number": attested.tcb_evaluation_data_number,
                        "platform_flags": {
                            "smt": attested.platform_flags.smt,
                            "dynamic_platform": attested.platform_flags.dynamic_platform,
                            "cached_keys": attested.platform_flags.cached_keys,
                        },
                        "collateral_issued_at": attested.collateral_issued_at,
                        "debug": attested.debug,
                        "report_data": tcp_types::hex::encode(&attested.report_data),
                        "quote_id": quote_id,
                        "at": at,
                    })
                );
            } else {
                let judged = args.genesis.is_some() || !measurements.is_empty();
                println!(
                    "verified:    yes, against {source}, at {at}{}",
                    if judged { "" } else { " — the quote and its chain only: no policy applied (give --genesis or --measurement)" }
                );
                println!("tee:         {}", tee_name(attested.tee));
                println!("identity:    {}", tcp_types::hex::encode(&attested.measurement));
                if let Some(signer) = attested.signer {
                    println!("signer:      {}", tcp_types::hex::encode(&signer));
                }
                println!("tcb status:  {}{}", attested.tcb_status, if attested.debug { " (debug)" } else { "" });
                println!(
                    "advisories:  {}",
                    if attested.advisory_ids.is_empty() { "none".to_string() } else { attested.advisory_ids.join(", ") }
                );
                println!("tcb eval:    {} (collateral issued at {})", attested.tcb_evaluation_data_number, attested.collateral_issued_at);
                let flag = |f: Option<bool>| f.map_or("not stated", |set| if set { "yes" } else { "no" });
                let flags = attested.platform_flags;
                println!(
                    "platform:    SMT {}, dynamic platform {}, cached keys {}",
                    flag(flags.smt),
                    flag(flags.dynamic_platform),
                    flag(flags.cached_keys)
                );
                println!("report data: {}", tcp_types::hex::encode(&attested.report_data));
                if let Some(id) = &quote_id {
                    println!("quote id:    {id}");
                }
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            if args.json {
                println!("{}", serde_json::json!({"verified": false, "error": e.to_string(), "at": at}));
            } else {
                println!("verified:    NO: {e}");
            }
            Ok(std::process::ExitCode::from(1))
        }
    }
}

fn identity(args: IdentityArgs) -> anyhow::Result<std::process::ExitCode> {
    let quote = read_quote(&args.quote)?;
    let identity = tcp_attestation::identity_of(&quote)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "tee": tee_name(identity.tee),
                "identity": tcp_types::hex::encode(&identity.measurement),
                "signer": identity.signer.map(|s| tcp_types::hex::encode(&s)),
                "debug": identity.debug,
                "components": identity.components.iter().map(|(name, value)| (name.to_string(), serde_json::Value::String(value.clone()))).collect::<serde_json::Map<_, _>>(),
            })
        );
    } else {
        println!("{}", tcp_types::hex::encode(&identity.measurement));
        for (name, value) in &identity.components {
            eprintln!("  {name:<14} {value}");
        }
        eprintln!(
            "({} quote{}; unverified — `tcpchain attest verify` checks it; allow it in genesis `attestation.measurements`)",
            tee_name(identity.tee),
            if identity.debug { ", DEBUG enclave" } else { "" }
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// A scratch directory removed when dropped (it holds an ephemeral platform key).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
