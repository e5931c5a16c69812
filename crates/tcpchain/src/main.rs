//! `tcpchain`: one binary for every TCP role and the client commands.

mod cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tcpchain", version, about = "TCP, the Trusted Computing Protocol")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run deterministic simulations of whole consensus networks under faults.
    Sim(cmd::sim::SimArgs),
    /// Random beacon tools (light verification of σ_h).
    #[command(subcommand)]
    Beacon(cmd::beacon::BeaconCommand),
    /// Light client: verify a header and its finality signature from any RPC against the
    /// chain's group key (one pairing check), without trusting the RPC.
    #[command(subcommand)]
    Light(cmd::light::LightCommand),
    /// Account keys: new, list, show (files 0600 under <home>/keys).
    Keys(cmd::keys::KeysArgs),
    /// Keys, node homes and a genesis (with the beacon's bootstrap DKG) for a local network.
    Init(cmd::init::InitArgs),
    /// Run a validator or full node.
    Node(cmd::node::NodeArgs),
    /// Start a whole local network as separate processes (Ctrl-C stops it).
    Devnet(cmd::devnet::DevnetArgs),
    /// A node's status.
    Status(cmd::client::StatusArgs),
    /// Read accounts, blocks and transactions.
    #[command(subcommand)]
    Query(cmd::client::QueryCommand),
    /// Sign and submit transactions.
    #[command(subcommand)]
    Tx(cmd::client::TxCommand),
    /// Load a local network with transfers; committed tx/s and latency against the machine's limit.
    Bench(cmd::bench::BenchArgs),
    /// DKMP: `dkmp request` has a compute node's enclave obtain a contract key from the live
    /// secret-share group.
    #[command(subcommand)]
    Dkmp(cmd::dkmp::DkmpCommand),
    /// Confidential contracts: deploy, execute (results opened and checked against the chain),
    /// show.
    #[command(subcommand)]
    Contract(cmd::contract::ContractCommand),
    /// Data owners: `data put` seals a file to a contract under your price and uploads it.
    #[command(subcommand)]
    Data(cmd::contract::DataCommand),
    /// The Plasma bridge to Ethereum: deposit, withdraw, exit, challenge, finalize, status.
    #[command(subcommand)]
    Bridge(cmd::bridge::BridgeCommand),
    /// Run a data source: owners' encrypted blobs, served only to compute nodes in service.
    Datasource(cmd::contract::DatasourceArgs),
    /// Remote attestation: `attest selftest` quotes with the configured backend and verifies.
    #[command(subcommand)]
    Attest(cmd::attest::AttestCommand),
    /// Run the enclave process (the same code as the `tcp-enclave` binary; used when that
    /// binary is not installed beside this one).
    #[command(hide = true)]
    Enclave {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Test harness: make a validator misbehave with its own key (for slashing tests and demos).
    #[command(subcommand, hide = true)]
    Harness(cmd::harness::HarnessCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => cmd::sim::run(args),
        Command::Beacon(command) => cmd::beacon::run(command),
        Command::Light(command) => cmd::light::run(command),
        Command::Keys(args) => cmd::keys::run(args),
        Command::Init(args) => cmd::init::run(args),
        Command::Node(args) => cmd::node::run(args),
        Command::Devnet(args) => cmd::devnet::run(args),
        Command::Status(args) => cmd::client::status(args),
        Command::Query(command) => cmd::client::query(command),
        Command::Tx(command) => cmd::client::tx(command),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Harness(command) => cmd::harness::run(command),
        Command::Attest(command) => cmd::attest::run(command),
        Command::Dkmp(command) => cmd::dkmp::run(command),
        Command::Contract(command) => cmd::contract::contract(command),
        Command::Data(command) => cmd::contract::data(command),
        Command::Datasource(args) => cmd::contract::datasource(args),
        Command::Bridge(command) => cmd::bridge::run(command),
        Command::Enclave { args } => return std::process::ExitCode::from(tcp_enclave::process::run(args).clamp(0, 255) as u8),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
