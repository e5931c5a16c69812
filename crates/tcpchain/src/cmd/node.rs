//! `tcpchain node --home <dir>`: run a validator or full node until SIGINT/SIGTERM.

use anyhow::Context as _;
use clap::Args;
use commonware_runtime::{Runner as _, Supervisor as _};
use std::path::PathBuf;
use tcp_node::genesis::{ChainSpec, NodeConfig};
use tcp_node::keystore::NodeSecrets;

#[derive(Args, Clone, Debug)]
pub struct NodeArgs {
    /// The node's home: config.json, node_key.json, data/.
    #[arg(long)]
    pub home: PathBuf,
    /// Log as JSON lines.
    #[arg(long)]
    pub log_json: bool,
}

pub fn run(args: NodeArgs) -> anyhow::Result<std::process::ExitCode> {
    let config = NodeConfig::load(&args.home)?;
    let spec = ChainSpec::load(&config.genesis_path(&args.home))?;
    let secrets = NodeSecrets::load(&args.home.join("node_key.json")).context("loading the node key")?;
    let level: tracing::Level = config.log_level.parse().map_err(|_| anyhow::anyhow!("config log_level {:?} is not a level", config.log_level))?;
    let runtime = commonware_runtime::tokio::Runner::new(commonware_runtime::tokio::Config::new().with_catch_panics(false));
    let home = args.home.clone();
    let log_json = args.log_json;
    runtime.start(|context| async move {
        commonware_runtime::tokio::telemetry::init(
            context.child("telemetry"),
            commonware_runtime::tokio::telemetry::Logs { level, json: log_json },
            Some(config.metrics_listen),
            None,
        );
        let rpc_listener = tokio::net::TcpListener::bind(config.rpc_listen)
            .await
            .with_context(|| format!("cannot listen for RPC on {}", config.rpc_listen))?;
        let (node, handle, events, _events_tx) = tcp_node::node::start(context, &home, &config, spec, secrets).await?;
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let mut rpc_shutdown = shutdown_rx.clone();
        let rpc = tokio::spawn(tcp_node::rpc::serve(rpc_listener, handle, async move {
            let _ = rpc_shutdown.changed().await;
        }));
        tracing::info!(node = %config.name, rpc = %config.rpc_listen, p2p = %config.p2p_listen, metrics = %config.metrics_listen, "node up");
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            let _ = shutdown_tx.send(true);
        });
        let result = node.run(events, shutdown_rx).await;
        rpc.abort();
        result?;
        Ok::<_, anyhow::Error>(std::process::ExitCode::SUCCESS)
    })
}
