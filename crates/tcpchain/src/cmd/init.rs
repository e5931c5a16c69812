//! `tcpchain init`: keys and a genesis for a development network of N validators (and
//! optionally full nodes), including the bootstrap DKG of the beacon, run here because this
//! tool holds every validator's key. Each node gets a home directory with its config and its
//! secrets (0600); funded demo accounts go to the network's key store.

use anyhow::{Context as _, bail};
use clap::Args;
use commonware_codec::DecodeExt as _;
use commonware_cryptography::Signer as _;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng as _, SeedableRng as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use tcp_crypto::Ed25519PrivateKey;
use tcp_node::genesis::{
    Allocation, ChainParams, ComputeConfig, FollowerPeer, GENESIS_VERSION, Genesis, GenesisValidator, NodeConfig, Role, encode_ed25519_public,
};
use tcp_node::keystore::NodeSecrets;
use tcp_node::KeyStore;

#[derive(Args, Clone, Debug)]
pub struct InitArgs {
    /// Number of validators (1–64).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Full nodes (follow the chain without voting), registered with the validators.
    #[arg(long, default_value_t = 0)]
    pub full_nodes: usize,
    /// Compute nodes: full nodes that run an enclave (simulated quotes), bond as compute nodes
    /// from a funded operator account in their home and register their enclave [default: 0 for
    /// init; 2 for devnet, whose demo has two compute nodes race on one contract].
    #[arg(long)]
    pub compute_nodes: Option<usize>,
    /// Directory for the genesis, node homes and demo keys.
    #[arg(long, default_value = "devnet-data")]
    pub dir: PathBuf,
    #[arg(long, default_value = "tcp-devnet")]
    pub chain_id: String,
    /// Node i listens on p2p base+10i, RPC base+1+10i, metrics base+4+10i.
    #[arg(long, default_value_t = 26656)]
    pub base_port: u16,
    #[arg(long, default_value_t = 1000)]
    pub block_interval_ms: u64,
    /// Funded demo accounts (alice, bob, carol, …) written to <dir>/keys.
    #[arg(long, default_value_t = 3)]
    pub accounts: usize,
    /// Balance of each demo account.
    #[arg(long, default_value = "1000000000000000000000000")]
    pub balance: String,
    /// Also create this many funded accounts named load-0, load-1, … (benchmarks).
    #[arg(long, default_value_t = 0)]
    pub load_accounts: usize,
    /// Heights per epoch (validator-set changes take effect at epoch boundaries).
    #[arg(long, default_value_t = ChainParams::default().epoch_length)]
    pub epoch_length: u64,
    /// Heights before an epoch's end at which the next set is planned and reshared to.
    #[arg(long, default_value_t = ChainParams::default().reshare_window)]
    pub reshare_window: u64,
    /// Heights between `tx unbond` and the stake's return.
    #[arg(long, default_value_t = ChainParams::default().staking.unbonding_period)]
    pub unbonding_period: u64,
    /// Heights a slashed validator stays jailed.
    #[arg(long, default_value_t = ChainParams::default().staking.jail_period)]
    pub jail_period: u64,
    /// k, the size of DKMP's secret-share group (drawn from the validators each epoch; all of
    /// them serve when there are fewer). Smaller than --validators, the group changes with epochs.
    #[arg(long, default_value_t = ChainParams::default().sssg_size)]
    pub sssg_size: u32,
    /// The bridge the devnet sets up (not a flag of `init`: `devnet --bridge` fills it).
    #[arg(skip)]
    pub bridge: Option<BridgeInit>,
}

/// A bridge to write into the genesis and the validators' configs.
#[derive(Clone, Debug)]
pub struct BridgeInit {
    pub root_rpc: String,
    pub root_chain_id: u64,
    /// Where `PlasmaRoot` will be (deployed after `init`, once the group key is known: its
    /// address follows from the deployer and its nonce).
    pub contract: [u8; 20],
    pub params: tcp_bridge::plasma::BridgeParams,
    /// Validator 0 relays a checkpoint every this many blocks.
    pub relay_every: u64,
}

/// The key name of a compute node's operator account in its home's key store.
pub const COMPUTE_OPERATOR_KEY: &str = "operator";
/// The key name, in validator 0's home, of the account that pays for relayed checkpoints.
pub const RELAYER_KEY: &str = "relayer";
/// The bond a development compute node posts.
const COMPUTE_BOND: u128 = 100_000;

const DEMO_NAMES: [&str; 8] = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"];

pub struct Layout {
    pub dir: PathBuf,
    pub nodes: Vec<(String, PathBuf, NodeConfig)>,
}

/// The devnet's data source listens in validator-0's block of ports, at this offset.
pub const DATASOURCE_PORT_OFFSET: u16 = 7;

fn port(base: u16, i: usize, offset: u16) -> anyhow::Result<u16> {
    let p = base as usize + 10 * i + offset as usize;
    u16::try_from(p).ok().filter(|p| *p > 0).with_context(|| format!("port {p} out of range; choose a lower --base-port"))
}

pub fn run(args: InitArgs) -> anyhow::Result<std::process::ExitCode> {
    let layout = init(&args)?;
    println!(
        "initialised {} with {} validators, {} full nodes and {} compute nodes",
        layout.dir.display(),
        args.validators,
        args.full_nodes,
        args.compute_nodes.unwrap_or(0)
    );
    for (name, home, config) in &layout.nodes {
        println!("  {name}: home {} rpc http://{} p2p {}", home.display(), config.rpc_listen, config.p2p_listen);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub fn init(args: &InitArgs) -> anyhow::Result<Layout> {
    let compute_nodes = args.compute_nodes.unwrap_or(0);
    if !(1..=64).contains(&args.validators) {
        bail!("--validators must be 1..=64");
    }
    if args.full_nodes > 16 || compute_nodes > 8 || args.accounts > DEMO_NAMES.len() || args.load_accounts > 100_000 {
        bail!("--full-nodes ≤ 16, --compute-nodes ≤ 8, --accounts ≤ {}, --load-accounts ≤ 100000", DEMO_NAMES.len());
    }
    let balance: u128 = args.balance.parse().context("--balance must be a decimal integer")?;
    let chain_id = tcp_types::ChainId::new(&args.chain_id).map_err(|e| anyhow::anyhow!("--chain-id: {e}"))?;
    if args.dir.join("genesis.json").exists() {
        bail!("{} already holds a network (use `devnet --reset` or another --dir)", args.dir.display());
    }
    // Every argument checked before anything is written: a bad one leaves no half-made network.
    let defaults = ChainParams::default();
    let params = ChainParams {
        block_interval_ms: args.block_interval_ms,
        epoch_length: args.epoch_length,
        reshare_window: args.reshare_window.min(args.epoch_length),
        sssg_size: args.sssg_size,
        staking: tcp_state::StakingParams { unbonding_period: args.unbonding_period, jail_period: args.jail_period, ..defaults.staking },
        ..defaults
    };
    params.check().map_err(|e| anyhow::anyhow!("{e}"))?;
    // The highest port any node (or the devnet's data source and root chain) takes.
    port(args.base_port, args.validators + args.full_nodes + compute_nodes - 1, 9)?;
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    let mut seed = [0u8; 32];
    getrandom_fill(&mut seed)?;
    let mut rng = ChaCha20Rng::from_seed(seed);

    let keys: Vec<Ed25519PrivateKey> = (0..args.validators).map(|_| random_key(&mut rng)).collect::<anyhow::Result<_>>()?;
    let followers_count = args.full_nodes + compute_nodes;
    let follower_keys: Vec<Ed25519PrivateKey> = (0..followers_count).map(|_| random_key(&mut rng)).collect::<anyhow::Result<_>>()?;
    // Every node gets its own BLS key (a genesis validator's is registered in the genesis; a
    // full node's when it bonds).
    let bls_keys: Vec<_> = (0..args.validators + followers_count).map(|_| tcp_beacon::validator_key::generate(&mut rng).0).collect();
    let store = KeyStore::open(&args.dir)?;
    let mut allocations = Vec::new();
    let mut validators = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let bls_key = tcp_beacon::validator_key::public_key_bytes(&tcp_beacon::validator_key::public_key(&bls_keys[i]));
        let reward = store.generate(&format!("validator-{i}-rewards"))?;
        validators.push(GenesisValidator {
            name: format!("validator-{i}"),
            consensus_key: encode_ed25519_public(&key.public_key()),
            bls_key: tcp_types::hex::encode(&bls_key),
            p2p_address: SocketAddr::from((Ipv4Addr::LOCALHOST, port(args.base_port, i, 0)?)),
            reward_address: reward.address.to_string(),
            coin_base: 1_000_000,
        });
    }
    for name in DEMO_NAMES.iter().take(args.accounts) {
        let info = store.generate(name)?;
        allocations.push(Allocation { address: info.address.to_string(), balance: balance.to_string() });
    }
    for i in 0..args.load_accounts {
        let info = store.generate(&format!("load-{i}"))?;
        allocations.push(Allocation { address: info.address.to_string(), balance: balance.to_string() });
    }

    // The bootstrap DKG: the ledger's own first ceremony, run locally.
    let members: Vec<tcp_beacon::ledger::Member> =
        keys.iter().map(|k| tcp_beacon::ledger::Member { key: k.public_key(), coin_base: 1_000_000 }).collect();
    let (ledger, _) = tcp_beacon::Ledger::genesis(chain_id.clone(), params.beacon(), std::sync::Arc::new(move |_, _| members.clone()));
    let ceremony = ledger.ceremony().context("the genesis ledger starts a DKG")?.clone();
    let (logs, _output, shares) = tcp_beacon::dkg::run_local_ceremony(&ceremony, &keys, &[], &mut rng)?;

    // The development PKI: its root goes in the genesis, each node home gets a simulated
    // platform (0600).
    let names: Vec<String> = (0..args.validators)
        .map(|i| format!("validator-{i}"))
        .chain((0..args.full_nodes).map(|j| format!("full-{j}")))
        .chain((0..compute_nodes).map(|j| format!("compute-{j}")))
        .collect();
    let homes: Vec<PathBuf> = names.iter().map(|name| args.dir.join(name)).collect();
    for home in &homes {
        std::fs::create_dir_all(home)?;
    }
    // Each compute node's operator account lives in its own home and is funded at genesis.
    for home in &homes[args.validators + args.full_nodes..] {
        let info = KeyStore::open(home)?.generate(COMPUTE_OPERATOR_KEY)?;
        allocations.push(Allocation { address: info.address.to_string(), balance: balance.to_string() });
    }
    let attestation = crate::cmd::attest::init_dev_attestation(&homes, &mut rng)?;
    // Validator 0 relays checkpoints, paying from an account of its own on the root chain.
    if args.bridge.is_some() {
        KeyStore::open(&homes[0])?.generate(RELAYER_KEY)?;
    }
    let genesis_bridge = args.bridge.as_ref().map(|b| tcp_node::genesis::BridgeConfig {
        root_chain_id: b.root_chain_id,
        contract: format!("0x{}", tcp_types::hex::encode(&b.contract)),
        challenge_period_secs: b.params.challenge_period,
        freeze_period_secs: b.params.freeze_period,
        exit_bond: b.params.exit_bond.to_string(),
        min_deposit: b.params.min_deposit.to_string(),
        confirmation_depth: b.params.confirmation_depth,
        start_block: 0,
    });

    let genesis = Genesis {
        version: GENESIS_VERSION,
        chain_id: args.chain_id.clone(),
        genesis_time_ms: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64,
        params,
        validators,
        allocations,
        bootstrap_logs: logs.iter().map(|l| tcp_types::hex::encode(&tcp_beacon::dkg::encode_log(l))).collect(),
        attestation,
        bridge: genesis_bridge,
    };
    let genesis_path = args.dir.join("genesis.json");
    std::fs::write(&genesis_path, serde_json::to_vec_pretty(&genesis)?)?;
    tcp_node::genesis::ChainSpec::load(&genesis_path)?; // what nodes will read must load

    let followers: Vec<FollowerPeer> = follower_keys
        .iter()
        .enumerate()
        .map(|(j, k)| -> anyhow::Result<FollowerPeer> {
            let i = args.validators + j;
            Ok(FollowerPeer {
                name: names[i].clone(),
                key: encode_ed25519_public(&k.public_key()),
                p2p_address: SocketAddr::from((Ipv4Addr::LOCALHOST, port(args.base_port, i, 0)?)),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut nodes = Vec::new();
    let all = keys
        .iter()
        .map(|k| (k, Role::Validator))
        .chain(follower_keys.iter().enumerate().map(|(j, k)| (k, if j < args.full_nodes { Role::Full } else { Role::Compute })));
    for (i, (key, role)) in all.enumerate() {
        let (name, home) = (names[i].clone(), homes[i].clone());
        let p2p = SocketAddr::from((Ipv4Addr::LOCALHOST, port(args.base_port, i, 0)?));
        let config = NodeConfig {
            name: name.clone(),
            role,
            genesis: PathBuf::from("../genesis.json"),
            p2p_listen: p2p,
            p2p_address: p2p,
            rpc_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, port(args.base_port, i, 1)?)),
            metrics_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, port(args.base_port, i, 4)?)),
            followers: if role == Role::Validator { followers.clone() } else { Vec::new() },
            log_level: "info".into(),
            compute: (role == Role::Compute).then(|| ComputeConfig {
                operator_key: COMPUTE_OPERATOR_KEY.into(),
                // Clients reach the compute node's RPC (issue 20 adds its compute methods).
                endpoint: format!("http://{}", SocketAddr::from((Ipv4Addr::LOCALHOST, port(args.base_port, i, 1).unwrap_or(0)))),
                bond: COMPUTE_BOND.to_string(),
                quote_backend: "simulated".into(),
                tee: "sgx".into(),
                dev_platform: Some(PathBuf::from(crate::cmd::attest::DEV_PLATFORM_FILE)),
                collateral: None,
                fee: "1000".into(),
                // The devnet's data source (`tcpchain devnet` starts it).
                datasources: vec![format!("http://{}", SocketAddr::from((Ipv4Addr::LOCALHOST, port(args.base_port, 0, DATASOURCE_PORT_OFFSET).unwrap_or(0))))],
            }),
            // Every validator follows the root chain (it checks each block's inbox entries
            // against its own view); validator 0 also relays checkpoints.
            bridge: args.bridge.as_ref().filter(|_| role == Role::Validator).map(|b| tcp_node::genesis::BridgeNodeConfig {
                root_rpc: b.root_rpc.clone(),
                relay_every: if i == 0 { b.relay_every } else { 0 },
                relayer_key: (i == 0).then(|| RELAYER_KEY.to_string()),
                advertise_root_rpc: true,
            }),
        };
        std::fs::write(home.join("config.json"), serde_json::to_vec_pretty(&config)?)?;
        let share = shares.iter().find(|(pk, _)| *pk == key.public_key()).map(|(_, s)| (ceremony.round(), s.clone()));
        NodeSecrets { consensus_key: key.clone(), bls_key: bls_keys[i].clone(), beacon_share: share }.save(&home.join("node_key.json"))?;
        nodes.push((name, home, config));
    }
    Ok(Layout { dir: args.dir.clone(), nodes })
}

fn random_key(rng: &mut ChaCha20Rng) -> anyhow::Result<Ed25519PrivateKey> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    rng.fill_bytes(seed.as_mut());
    Ed25519PrivateKey::decode(commonware_codec::Copying(&seed[..])).map_err(|e| anyhow::anyhow!("ed25519 key: {e}"))
}

pub fn getrandom_fill(buf: &mut [u8]) -> anyhow::Result<()> {
    getrandom::fill(buf).map_err(|e| anyhow::anyhow!("the operating system's random number generator failed: {e}"))
}

/// The node homes of an initialised network directory, in order (validators, then full nodes).
pub fn layout(dir: &Path) -> anyhow::Result<Layout> {
    let mut nodes = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("config.json").exists())
        .collect();
    entries.sort_by_key(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let (kind, n) = name.rsplit_once('-').unwrap_or((&name, "0"));
        (kind != "validator", kind == "compute", n.parse::<u32>().unwrap_or(0))
    });
    for home in entries {
        let config = NodeConfig::load(&home)?;
        nodes.push((config.name.clone(), home, config));
    }
    if nodes.is_empty() {
        bail!("{} holds no node homes; run `tcpchain init` first", dir.display());
    }
    Ok(Layout { dir: dir.to_path_buf(), nodes })
}
