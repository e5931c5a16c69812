//! `tcpchain devnet`: the whole local network as separate processes in one command. Data lives
//! under one directory (`--reset` starts over); Ctrl-C stops every node cleanly.

use super::init::{InitArgs, Layout, init, layout};
use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tcp_node::KeyStore;
use tcp_node::client::RpcClient;
use tcp_state::{Action, Transaction};

#[derive(Args, Clone, Debug)]
pub struct DevnetArgs {
    /// The network `init` creates when the directory holds none yet.
    #[command(flatten)]
    pub network: InitArgs,
    /// Delete the directory first and start a new chain.
    #[arg(long)]
    pub reset: bool,
    /// Once the network commits, send a few transfers and show the balances on every node.
    #[arg(long)]
    pub demo: bool,
    /// Stop the network after the demo instead of running until Ctrl-C.
    #[arg(long)]
    pub exit_after_demo: bool,
    /// Bridge the chain to a root chain: `embedded` (revm in a process of the devnet, served
    /// over JSON-RPC) or the http:// URL of an Ethereum node with anvil's test methods (anvil
    /// itself). PlasmaRoot is deployed on it for the new chain's group key.
    #[arg(long)]
    pub bridge: Option<String>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Running node processes (and the data source, when compute nodes use one); stopped (SIGTERM,
/// then SIGKILL after 10 s) when dropped.
pub struct Network {
    pub layout: Layout,
    pub children: Vec<Option<Child>>,
    pub datasource: Option<(String, Child)>,
    /// The root chain of the bridge, when the devnet serves it.
    pub root_chain: Option<super::devnet_bridge::RootChainProcess>,
}

impl Network {
    pub fn spawn_node(home: &Path) -> anyhow::Result<Child> {
        let exe = std::env::current_exe().context("locating the tcpchain binary")?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(home.join("node.log"))?;
        Command::new(exe)
            .arg("node")
            .arg("--home")
            .arg(home)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting the node in {}", home.display()))
    }

    pub fn start(layout: Layout) -> anyhow::Result<Network> {
        let mut children = Vec::new();
        for (_, home, _) in &layout.nodes {
            children.push(Some(Network::spawn_node(home)?));
        }
        let mut network = Network { layout, children, datasource: None, root_chain: None };
        network.datasource = network.spawn_datasource()?;
        Ok(network)
    }

    /// The data source the compute nodes name (`compute.datasources`), at `<dir>/datasource`,
    /// reading the chain through the first node.
    fn spawn_datasource(&self) -> anyhow::Result<Option<(String, Child)>> {
        let Some(url) = self.layout.nodes.iter().find_map(|(_, _, c)| c.compute.as_ref()?.datasources.first().cloned()) else { return Ok(None) };
        let listen = url.strip_prefix("http://").unwrap_or(&url).to_string();
        let home = self.layout.dir.join("datasource");
        std::fs::create_dir_all(&home)?;
        let exe = std::env::current_exe().context("locating the tcpchain binary")?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(home.join("datasource.log"))?;
        let child = Command::new(exe)
            .args(["datasource", "--listen", &listen, "--rpc", &self.rpc_urls()[0]])
            .arg("--home")
            .arg(&home)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting the data source")?;
        Ok(Some((url, child)))
    }

    pub fn rpc_urls(&self) -> Vec<String> {
        self.layout.nodes.iter().map(|(_, _, c)| format!("http://{}", c.rpc_listen)).collect()
    }

    /// Wait until every node reports at least `height` committed.
    pub fn wait_for_height(&mut self, height: u64, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        for url in self.rpc_urls() {
            let mut client = RpcClient::new(&url)?;
            loop {
                if let Ok(s) = client.call("status", json!([]))
                    && s["height"].as_u64().unwrap_or(0) >= height
                {
                    break;
                }
                self.check_alive()?;
                if Instant::now() > deadline || STOP.load(Ordering::SeqCst) {
                    bail!("{url} did not reach height {height} in {timeout:?}; see the node.log files under {}", self.layout.dir.display());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(root) = &mut self.root_chain
            && let Some(c) = &mut root.child
            && let Some(status) = c.try_wait()?
        {
            bail!("the embedded root chain exited ({status}); its log: {}", self.layout.dir.join("root-chain.log").display());
        }
        if let Some((_, c)) = &mut self.datasource
            && let Some(status) = c.try_wait()?
        {
            bail!("the data source exited ({status}); its log: {}", self.layout.dir.join("datasource/datasource.log").display());
        }
        for (i, child) in self.children.iter_mut().enumerate() {
            if let Some(c) = child
                && let Some(status) = c.try_wait()?
            {
                let log = self.layout.nodes[i].1.join("node.log");
                bail!("{} exited ({status}); its log: {}", self.layout.nodes[i].0, log.display());
            }
        }
        Ok(())
    }

    pub fn stop(&mut self) {
        if let Some(mut root) = self.root_chain.take() {
            root.stop();
        }
        if let Some((_, mut c)) = self.datasource.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGINT);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for child in self.children.iter_mut().flatten() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for child in self.children.iter_mut() {
            if let Some(c) = child {
                while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = c.kill();
                let _ = c.wait();
            }
            *child = None;
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn run(args: DevnetArgs) -> anyhow::Result<std::process::ExitCode> {
    install_signal_handlers();
    let dir = &args.network.dir;
    if args.reset && dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let mut root_chain = None;
    let layout = if dir.join("genesis.json").exists() {
        if args.bridge.as_deref() == Some("embedded") {
            bail!("the embedded root chain lives in memory and is gone: start the bridged devnet anew with --reset");
        }
        println!("resuming the network in {}", dir.display());
        layout(dir)?
    } else {
        // The demo's story has two compute nodes race on one contract.
        let mut network = args.network.clone();
        network.compute_nodes.get_or_insert(2);
        match &args.bridge {
            Some(spec) => {
                let mut process = super::devnet_bridge::start_root_chain(spec, dir, network.base_port)?;
                let planned = super::devnet_bridge::plan(&process, dir).and_then(|plan| {
                    network.bridge = Some(plan.clone());
                    let layout = init(&network)?;
                    super::devnet_bridge::deploy(&plan, dir)?;
                    Ok(layout)
                });
                match planned {
                    Ok(layout) => {
                        root_chain = Some(process);
                        layout
                    }
                    Err(e) => {
                        process.stop();
                        return Err(e);
                    }
                }
            }
            None => init(&network)?,
        }
    };
    // The light client's trust anchor for this chain, from the genesis just made (or resumed):
    // `tcpchain light verify` and `query proof --verify` then check against it.
    let genesis = dir.join("genesis.json");
    let spec = tcp_node::genesis::ChainSpec::load(&genesis)?;
    let anchor = super::light::pin_genesis_anchor(&spec, &genesis)?;
    let mut network = Network::start(layout)?;
    network.root_chain = root_chain;
    println!("light client trust anchor (chain id and group key from the genesis): {}", anchor.display());
    println!("devnet: {} nodes, data under {}", network.layout.nodes.len(), network.layout.dir.display());
    for (name, home, config) in &network.layout.nodes {
        println!("  {name:<12} rpc http://{}  metrics http://{}/metrics  log {}", config.rpc_listen, config.metrics_listen, home.join("node.log").display());
    }
    if let Some((url, _)) = &network.datasource {
        println!("  {:<12} {url}  log {}", "datasource", network.layout.dir.join("datasource/datasource.log").display());
    }
    let root_rpc = network.layout.nodes.iter().find_map(|(_, _, c)| c.bridge.as_ref().map(|b| b.root_rpc.clone()));
    if let Some(url) = &root_rpc {
        println!("  {:<12} {url}  (the bridge's root chain{})", "root chain", if network.root_chain.as_ref().is_some_and(|r| r.child.is_some()) { ", embedded" } else { "" });
    }
    network.wait_for_height(1, Duration::from_secs(60))?;
    println!("the chain is committing blocks");
    if args.demo {
        demo(&mut network)?;
        if let Some(url) = &root_rpc {
            super::devnet_bridge::demo(&network.layout.dir, &network.rpc_urls()[0], url)?;
        }
        if args.exit_after_demo {
            network.stop();
            println!("network stopped");
            return Ok(std::process::ExitCode::SUCCESS);
        }
    }
    println!("press Ctrl-C to stop");
    while !STOP.load(Ordering::SeqCst) {
        if let Err(e) = network.check_alive() {
            eprintln!("{e:#}");
            network.stop();
            return Ok(std::process::ExitCode::FAILURE);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("stopping…");
    network.stop();
    println!("network stopped");
    Ok(std::process::ExitCode::SUCCESS)
}

/// Three transfers alice → bob through the first node, then bob's balance on every node; the
/// secret-share group, the compute nodes' enclaves, and the confidential-contract story
/// (`demo_contracts`).
fn demo(network: &mut Network) -> anyhow::Result<()> {
    let store = KeyStore::open(&network.layout.dir)?;
    let alice = store.load("alice")?;
    let bob = store.show("bob")?.address;
    let urls = network.rpc_urls();
    let mut client = RpcClient::new(&urls[0])?;
    let chain_id = tcp_types::ChainId::new(client.call("status", json!([]))?["chain_id"].as_str().unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("chain id: {e}"))?;
    let nonce = client.call("account", json!([alice.address().to_string()]))?["pending_nonce"].as_u64().unwrap_or(0);
    let mut hashes = Vec::new();
    for k in 0..3u64 {
        let tx = Transaction { chain_id: chain_id.clone(), nonce: nonce + k, gas_price: 1, gas_limit: 21_000, action: Action::Transfer { to: bob, amount: 1_000 * (k as u128 + 1) } }
            .sign(&alice);
        let hash = client.call("send_transaction", json!([tcp_types::hex::encode(&tx.encode())]))?;
        println!("demo: alice → bob {} (nonce {}), tx {}", 1_000 * (k + 1), nonce + k, hash.as_str().unwrap_or(""));
        hashes.push(hash.as_str().unwrap_or_default().to_string());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_height = 0;
    for hash in &hashes {
        loop {
            let receipt = client.call("receipt", json!([hash]))?;
            if let Some(h) = receipt["block_height"].as_u64() {
                println!("demo: tx {}… committed in block {h}", &hash[..12]);
                last_height = last_height.max(h);
                break;
            }
            if Instant::now() > deadline {
                bail!("demo transfer {hash} not committed within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    network.wait_for_height(last_height, Duration::from_secs(30))?;
    for (url, (name, _, _)) in urls.iter().zip(&network.layout.nodes) {
        let account = RpcClient::new(url)?.call("account", json!([bob.to_string()]))?;
        println!("demo: {name:<12} sees bob {} with balance {}", bob, account["balance"].as_str().unwrap_or("?"));
    }
    // DKMP: the first secret-share group (its DKG runs in the first blocks), and the enclaves
    // the compute nodes registered.
    let group = wait_demo(network, Duration::from_secs(60), "the first secret-share group", || {
        let g = client.call("sssg", json!([])).ok()?;
        g["serving"].is_object().then_some(g)
    })?;
    println!(
        "demo: a secret-share group of {} validators serves (threshold {}), master public key {}… (tcpchain query sssg)",
        group["serving"]["members"].as_array().map_or(0, Vec::len),
        group["serving"]["threshold"],
        &group["serving"]["master_public_key"].as_str().unwrap_or("")[..16]
    );
    let compute = network.layout.nodes.iter().filter(|(_, _, c)| c.role == tcp_node::genesis::Role::Compute).count();
    if compute > 0 {
        let nodes = wait_demo(network, Duration::from_secs(60), "the compute nodes' enclave registrations", || {
            let v = client.call("compute_nodes", json!([])).ok()?;
            let nodes = v["compute_nodes"].as_array()?.clone();
            let registered = nodes.iter().filter(|n| n["enclaves"].as_array().is_some_and(|e| e.iter().any(|e| e["current"] == true))).count();
            (registered >= compute).then_some(nodes)
        })?;
        for n in &nodes {
            for e in n["enclaves"].as_array().into_iter().flatten().filter(|e| e["current"] == true) {
                println!(
                    "demo: compute node {} registered enclave {}… ({}, identity {}…, {}) until height {} (tcpchain query compute)",
                    n["operator"].as_str().unwrap_or(""),
                    &e["signing_key"].as_str().unwrap_or("")[..16],
                    e["tee"].as_str().unwrap_or(""),
                    &e["measurement"].as_str().unwrap_or("")[..16],
                    e["tcb_status"].as_str().unwrap_or(""),
                    e["expires_at"]
                );
            }
        }
        let compute_urls: Vec<String> =
            network.layout.nodes.iter().filter(|(_, _, c)| c.role == tcp_node::genesis::Role::Compute).map(|(_, _, c)| format!("http://{}", c.rpc_listen)).collect();
        match (&network.datasource, compute_urls.len()) {
            (Some((datasource, _)), 2..) => {
                super::demo_contracts::run(&network.layout.dir, &urls[0], datasource, &compute_urls[..2])?;
            }
            _ => println!("demo: confidential contracts need two compute nodes and the data source (devnet --compute-nodes 2): skipped"),
        }
    }
    Ok(())
}

/// Poll `f` until it answers, checking the nodes are alive; an error naming `what` after `timeout`.
fn wait_demo<T>(network: &mut Network, timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        network.check_alive()?;
        if Instant::now() > deadline || STOP.load(Ordering::SeqCst) {
            bail!("demo: no sign of {what} within {timeout:?}; see the node.log files under {}", network.layout.dir.display());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
