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
    /// Account keys: new, list, show (files 0600 under <home>/keys).
    Keys(cmd::keys::KeysArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => cmd::sim::run(args),
        Command::Beacon(command) => cmd::beacon::run(command),
        Command::Keys(args) => cmd::keys::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
