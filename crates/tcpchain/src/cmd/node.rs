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
    // Held until the process exits: the runtime below would otherwise wait, silently, on the
    // lock of a storage directory another node from this home holds.
    let _home_lock = lock_home(&args.home)?;
    // The runtime's storage (and its lock) lives in the node's home, not in a fresh directory
    // under /tmp for every start.
    let runtime_config = commonware_runtime::tokio::Config::new().with_catch_panics(false).with_storage_directory(args.home.join("runtime"));
    let runtime = commonware_runtime::tokio::Runner::new(runtime_config);
    let home = args.home.clone();
    let log_json = args.log_json;
    runtime.start(|context| async move {
        init_logs(level, log_json);
        // The p2p listener is bound inside a background task that can only panic on failure;
        // check the port first so a taken one is a clear error and a non-zero exit.
        ensure_can_listen(config.p2p_listen, "p2p")?;
        let metrics_listener = tokio::net::TcpListener::bind(config.metrics_listen)
            .await
            .with_context(|| format!("cannot listen for metrics on {}", config.metrics_listen))?;
        let registry = std::sync::Arc::new(context.child("metrics"));
        tokio::spawn(tcp_node::rpc::serve_metrics(metrics_listener, move || {
            use commonware_runtime::Metrics as _;
            registry.encode()
        }));
        let rpc_listener = tokio::net::TcpListener::bind(config.rpc_listen)
            .await
            .with_context(|| format!("cannot listen for RPC on {}", config.rpc_listen))?;
        let key = secrets.consensus_key.clone();
        let (p2p_context, p2p_config, p2p_spec) = (context.child("network"), config.clone(), spec.clone());
        let disk = std::sync::Arc::new(tcp_node::disk::OsDisk);
        let spec_for_compute = spec.clone();
        let bridge_spec = spec.bridge;
        let setup = tcp_node::node::NodeSetup::new(disk, home.clone(), config.clone(), spec, secrets, tcp_node::node::random_seed());
        let (node, mut handle, events, _events_tx) = tcp_node::node::start::<tcp_node::p2p::Production>(context, setup, |bonded| {
            tcp_node::p2p::connect(&p2p_context, &p2p_config, &p2p_spec, &key, bonded)
        })?;
        let compute_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let compute = match config.role {
            tcp_node::genesis::Role::Compute => {
                let (thread, methods) = super::compute::spawn(&home, &config, &spec_for_compute, compute_stop.clone())?;
                handle.extension = Some(std::sync::Arc::new(methods));
                Some(thread)
            }
            _ => None,
        };
        let bridge = super::bridge_node::spawn(&home, &config, bridge_spec, handle.clone(), compute_stop.clone())?;
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
        compute_stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(compute) = compute {
            let _ = tokio::task::spawn_blocking(move || compute.join()).await;
        }
        for thread in bridge {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        rpc.abort();
        result?;
        Ok::<_, anyhow::Error>(std::process::ExitCode::SUCCESS)
    })
}

/// An exclusive lock on `<home>/node.lock`, or an error naming the home if another process
/// holds it (the OS releases it when the holder exits, cleanly or not).
fn lock_home(home: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = home.join("node.lock");
    let file = std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!("another node is running from {}", home.display()),
        Err(std::fs::TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
}

/// Binds `addr` the way the runtime will (SO_REUSEADDR, so a restart after a crash is not refused
/// for connections in TIME_WAIT) and releases it at once.
fn ensure_can_listen(addr: std::net::SocketAddr, what: &str) -> anyhow::Result<()> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }?;
    socket.set_reuseaddr(true)?;
    socket
        .bind(addr)
        .and_then(|()| socket.listen(1).map(drop))
        .with_context(|| format!("cannot listen for {what} on {addr} (is another process using the port?)"))
}

/// Logs to stdout through `tracing`; colours only on a terminal, so log files stay plain text.
fn init_logs(level: tracing::Level, json: bool) {
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt().with_max_level(level).with_thread_ids(true);
    if json {
        builder.json().init();
    } else {
        builder.compact().with_ansi(std::io::stdout().is_terminal()).init();
    }
}
