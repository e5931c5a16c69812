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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sim(args) => cmd::sim::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
