//! The devnet demo's confidential-contract story (issue 20, item 8), told step by step with the
//! blocks each step committed in: a bank deploys credit scoring; two data owners seal applicant
//! records to the contract and upload them with a price; the bank scores them and reads its
//! result, checked against the chain; the chain shows only hashes, ciphertext and the owners'
//! fees; two compute nodes racing on one state see the later one refused as stale; and the
//! bank's request sent again is refused as a replay. Everything goes through `tcp-client`, as
//! `tcpchain contract …` and `tcpchain data put` do.

use anyhow::{Context as _, bail};
use serde_json::json;
use tcp_client::{Opened, PreparedCall};
use tcp_light::LightClient;
use tcp_node::KeyStore;
use tcp_node::client::RpcClient;
use tcp_types::hex;

/// Q16.16, as credit-score reads numbers.
fn q(x: f64) -> i32 {
    (x * 65536.0).round() as i32
}

/// The bank's model: approve when σ(bias + w·x) ≥ 0.5, over income (in 10 000s), debt ratio,
/// years employed and late payments.
fn model() -> Vec<u8> {
    let weights = [0.35, -2.0, 0.15, -0.6];
    let mut out = Vec::new();
    out.extend_from_slice(&q(0.5).to_le_bytes());
    out.extend_from_slice(&q(-0.5).to_le_bytes());
    out.extend_from_slice(&(weights.len() as u32).to_le_bytes());
    for w in weights {
        out.extend_from_slice(&q(w).to_le_bytes());
    }
    out
}

/// A batch of applicant records as credit-score takes them.
fn records(applicants: &[[f64; 4]]) -> Vec<u8> {
    let mut out = (applicants.len() as u32).to_le_bytes().to_vec();
    for features in applicants {
        for f in features {
            out.extend_from_slice(&q(*f).to_le_bytes());
        }
    }
    out
}

fn short(bytes: &[u8]) -> String {
    format!("{}…", &hex::encode(bytes)[..16])
}

/// The demo's story over `chain_rpc` (a validator), the data source and two compute nodes.
pub fn run(dir: &std::path::Path, chain_rpc: &str, datasource: &str, compute: &[String]) -> anyhow::Result<()> {
    let [first, second] = compute else { bail!("the contract demo needs two compute nodes (devnet --compute-nodes 2)") };
    let store = KeyStore::open(dir)?;
    let (bank, bob, carol) = (store.load("alice")?, store.load("bob")?, store.load("carol").context("the demo needs three accounts (--accounts 3)")?);
    let spec = tcp_node::genesis::ChainSpec::load(&dir.join("genesis.json"))?;
    let light = LightClient::new(spec.chain_id.clone(), spec.bootstrap_group_key().map_err(|e| anyhow::anyhow!("the genesis: {e}"))?);
    let mut chain = RpcClient::new(chain_rpc)?;
    let balance = |chain: &mut RpcClient, who: &tcp_state::Address| -> anyhow::Result<u128> {
        Ok(chain.call("account", json!([who.to_string()]))?["balance"].as_str().unwrap_or("0").parse()?)
    };
    const MAX_FEE: u128 = 5_000_000;

    // 1. The bank deploys credit scoring through the first compute node.
    let wasm = include_bytes!("../../../../contracts/wasm/credit_score.wasm");
    let deployed = tcp_client::deploy(first, &mut chain, &light, &bank, wasm, &model(), 0, MAX_FEE).context("deploying credit scoring")?;
    if deployed.status != tcp_state::CallStatus::Ok {
        bail!("the deploy failed: {}", String::from_utf8_lossy(&deployed.result));
    }
    let cid = deployed.cid;
    let contract = tcp_client::verified_contract(&mut chain, &light, &cid)?;
    println!(
        "demo: [block {}] alice (a bank) deployed credit scoring: contract {}, code {}, key generation 0, public key {} (the enclave ran init; validators checked its signature and ran nothing)",
        deployed.block_height,
        hex::encode(&cid),
        short(&contract.code_hash),
        short(&contract.public_key)
    );

    // 2. Two data owners seal applicant records to the contract's verified key, with a price.
    let uploads = [
        (&bob, "bob", 10u128, records(&[[5.2, 0.25, 6.0, 0.0], [2.1, 0.6, 1.0, 3.0], [3.8, 0.35, 3.0, 1.0]])),
        (&carol, "carol", 15u128, records(&[[7.5, 0.1, 12.0, 0.0], [1.5, 0.8, 0.0, 4.0]])),
    ];
    let mut blobs = Vec::new();
    for (owner, name, price, plain) in &uploads {
        let hash = tcp_client::put_data(datasource, &mut chain, &light, owner, &cid, *price, plain).with_context(|| format!("{name}'s upload"))?;
        println!(
            "demo: [off chain] {name} sealed {} applicant records ({} bytes) to the contract's key and uploaded them to the data source at {price} per use: blob {}",
            u32::from_le_bytes(plain[..4].try_into().expect("4 bytes")),
            plain.len(),
            hex::encode(&hash)
        );
        blobs.push(hash);
    }

    // 3. The bank scores the applicants and reads its result.
    let owners_before = (balance(&mut chain, &bob.address())?, balance(&mut chain, &carol.address())?);
    let scoring = tcp_client::prepare_execute(&mut chain, &light, &bank, &cid, b"", blobs.clone(), MAX_FEE)?;
    let scored = scoring.run(first, &mut chain, &light).context("the bank's scoring")?;
    if scored.status != tcp_state::CallStatus::Ok || !scored.verified {
        bail!("the scoring failed: {}", String::from_utf8_lossy(&scored.result));
    }
    println!("demo: [block {}] alice scored the 5 applicants (request {}, fee {} to the compute node):", scored.block_height, short(&scored.request_id), scored.fee);
    let owners = ["bob", "bob", "bob", "carol", "carol"];
    for (i, (score, owner)) in scored.result.chunks_exact(5).zip(owners).enumerate() {
        let probability = f64::from(i32::from_le_bytes(score[..4].try_into().expect("4 bytes"))) / 65536.0;
        println!("demo:   applicant {} ({owner}'s record): score {probability:.2} → {}", i + 1, if score[4] == 1 { "approved" } else { "declined" });
    }
    println!("demo: result verified against the chain (its hash {} is the committed request's, read through a state proof under φ)", short(&scored.result_hash));

    // 4. What the chain shows: hashes, ciphertext and fees.
    wait_for_height(&mut chain, scored.block_height)?;
    let receipt = chain.call("receipt", json!([scored.tx_hash]))?;
    let c = &receipt["compute"];
    println!(
        "demo: the chain holds: result hash {}, the result sealed ({} bytes of ciphertext), state hash {} → {}, fuel {}, fee {}",
        c["result_hash"].as_str().map_or("?", |h| &h[..16]),
        c["result"].as_str().map_or(0, |r| r.len() / 2),
        c["pre_state_hash"].as_str().map_or("?", |h| &h[..16]),
        c["state_hash"].as_str().map_or("?", |h| &h[..16]),
        c["fuel_used"],
        c["fee"].as_str().unwrap_or("?")
    );
    let owners_after = (balance(&mut chain, &bob.address())?, balance(&mut chain, &carol.address())?);
    for (name, owner, before, after) in [("bob", &bob, owners_before.0, owners_after.0), ("carol", &carol, owners_before.1, owners_after.1)] {
        let usage = chain.call("data_usage", json!([{"owner": owner.address().to_string()}]))?;
        println!(
            "demo: {name} was paid {} for this use of their data ({} use(s) on record: tcpchain query data-usage --owner {})",
            after.saturating_sub(before),
            usage["count"],
            owner.address()
        );
    }

    // 5. Two compute nodes run two of the bank's requests on the same state: one commits, the
    //    other is refused as stale (the bank may send it again). Both take their view of the
    //    contract at once, so the race almost always happens; when one node was slow enough to
    //    see the other's commit, both commit, and the race is run again.
    let mut raced = false;
    for _ in 0..3 {
        let a = tcp_client::prepare_execute(&mut chain, &light, &bank, &cid, b"", blobs.clone(), MAX_FEE)?;
        let b = tcp_client::prepare_execute(&mut chain, &light, &bank, &cid, b"", blobs.clone(), MAX_FEE)?;
        match race(chain_rpc, &light, (&a, first), (&b, second)) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => {
                let lost = format!("{lost:#}");
                if !lost.contains("stale") {
                    bail!("the losing request failed for another reason than a stale state: {lost}");
                }
                println!(
                    "demo: [block {}] two compute nodes ran two of alice's requests on the same state; one committed, the other was refused: {}",
                    won.block_height,
                    lost.rsplit(": ").take(3).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(": ")
                );
                raced = true;
                break;
            }
            (Ok(x), Ok(y)) => println!("demo: [blocks {} and {}] both racing requests ran on fresh states (no race this time); again", x.block_height, y.block_height),
            (Err(x), Err(y)) => bail!("both racing requests failed: {x:#}; {y:#}"),
        }
    }
    if !raced {
        bail!("three races in a row had no loser");
    }

    // 6. The bank's first request, sent again: refused, its id is on chain.
    match scoring.run(second, &mut chain, &light) {
        Ok(again) => bail!("the replayed request committed again in block {}", again.block_height),
        Err(e) if format!("{e:#}").contains("committed already") => {
            println!("demo: alice's scoring request {} sent again to the other compute node: refused (the request was committed already)", short(&scoring.request_id()));
        }
        Err(e) => bail!("the replayed request failed for another reason: {e:#}"),
    }
    Ok(())
}

/// Run two prepared calls at once, each through its own compute node.
fn race(chain_rpc: &str, light: &LightClient, a: (&PreparedCall, &str), b: (&PreparedCall, &str)) -> (anyhow::Result<Opened>, anyhow::Result<Opened>) {
    let run = |(call, compute): (&PreparedCall, &str)| -> anyhow::Result<Opened> { call.run(compute, &mut RpcClient::new(chain_rpc)?, light) };
    std::thread::scope(|s| {
        let first = s.spawn(|| run(a));
        let second = s.spawn(|| run(b));
        let joined = |h: std::thread::ScopedJoinHandle<'_, anyhow::Result<Opened>>| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("the request's thread panicked")));
        (joined(first), joined(second))
    })
}

/// Wait until the node has committed `height` (the receipt and balances are read after it).
fn wait_for_height(chain: &mut RpcClient, height: u64) -> anyhow::Result<()> {
    tcp_client::wait_for(std::time::Duration::from_secs(30), || Ok((chain.call("status", json!([]))?["height"].as_u64().unwrap_or(0) >= height).then_some(())))
        .with_context(|| format!("waiting for height {height}"))
}
