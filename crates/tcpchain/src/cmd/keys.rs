//! `tcpchain keys new|list|show`: account keys in `<home>/keys/` (files 0600). Secrets are
//! never printed.

use anyhow::Result;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tcp_node::{KeyInfo, KeyStore};

#[derive(Args)]
pub struct KeysArgs {
    /// The node's home directory (keys live in <home>/keys).
    #[arg(long, global = true, default_value_os_t = default_home())]
    home: PathBuf,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a new secp256k1 account key.
    New { name: String },
    /// List the keys and their addresses.
    List,
    /// Show one key's address and file.
    Show { name: String },
}

pub fn default_home() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".tcpchain")
}

fn to_json(info: &KeyInfo) -> serde_json::Value {
    serde_json::json!({ "name": info.name, "address": info.address.to_string(), "path": info.path })
}

fn print(info: &KeyInfo, json: bool) {
    if json {
        println!("{}", to_json(info));
    } else {
        println!("{}  {}  ({})", info.name, info.address, info.path.display());
    }
}

pub fn run(args: KeysArgs) -> Result<ExitCode> {
    let store = KeyStore::open(&args.home)?;
    match args.command {
        KeysCommand::New { name } => print(&store.generate(&name)?, args.json),
        KeysCommand::Show { name } => print(&store.show(&name)?, args.json),
        KeysCommand::List => {
            let mut failed = false;
            let mut rows = Vec::new();
            for entry in store.list()? {
                match entry {
                    Ok(info) => rows.push(info),
                    Err(e) => {
                        failed = true;
                        eprintln!("warning: {e}");
                    }
                }
            }
            if args.json {
                println!("{}", serde_json::Value::Array(rows.iter().map(to_json).collect()));
            } else if rows.is_empty() {
                println!("no keys in {}", args.home.join("keys").display());
            } else {
                for info in &rows {
                    print(info, false);
                }
            }
            if failed {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
