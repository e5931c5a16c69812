//! The node's authenticated p2p network (commonware-p2p `lookup`): validators from the genesis
//! are the primary peers and are dialed; followers named in the node's config are let in as
//! secondary peers. Consensus traffic and transaction gossip use separate channels, each with
//! its own per-peer quota, so a flood of one cannot starve the other.

use crate::NodeError;
use crate::genesis::{ChainSpec, NodeConfig};
use crate::node::{Host, NodeNetwork, PeerControl};
use crate::wire::{CONSENSUS_CHANNEL, TRANSACTION_CHANNEL};
use commonware_cryptography::Signer as _;

use commonware_runtime::Supervisor as _;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;
use tcp_crypto::{Ed25519PrivateKey, Ed25519PublicKey};

pub type P2pSender = commonware_p2p::authenticated::lookup::Sender<Ed25519PublicKey, commonware_runtime::tokio::Context>;
pub type P2pReceiver = commonware_p2p::authenticated::lookup::Receiver<Ed25519PublicKey>;
pub type Oracle = commonware_p2p::authenticated::lookup::Oracle<Ed25519PublicKey>;

/// Messages per second a single peer may send on each channel before it is throttled.
const CONSENSUS_QUOTA_PER_PEER: u32 = 5000;
const TRANSACTION_QUOTA_PER_PEER: u32 = 500;
/// The burst each quota allows. commonware sizes every channel's inbound mailbox (and the
/// router's) as burst × retained peers and allocates it whole at start: the default burst
/// (the per-second rate) made an idle node hold ~750 MB of empty mailbox slots. The consensus
/// burst is sized to the set (see `consensus_burst`); transactions come in batches.
const TRANSACTION_BURST_PER_PEER: u32 = 64;

/// A peer catching up receives up to two votes per validator at once (`catch_up`), and a
/// sender drops what exceeds a recipient's burst: room for that, plus the rest of a height.
fn consensus_burst(peers: usize) -> u32 {
    (2 * peers + 64).min(CONSENSUS_QUOTA_PER_PEER as usize) as u32
}
/// How long a peer that sent garbage stays blocked.
const BLOCK_DURATION: Duration = Duration::from_secs(600);

/// What `tcpchain node` runs on: tokio and the authenticated p2p network.
pub struct Production;

impl Host for Production {
    type Context = commonware_runtime::tokio::Context;
    type Sender = P2pSender;
    type Receiver = P2pReceiver;
    type Peers = Oracle;
}

impl PeerControl for Oracle {
    fn block(&mut self, peer: Ed25519PublicKey) {
        let _ = commonware_p2p::Blocker::block(self, peer);
    }
    fn track(&mut self, id: u64, peers: commonware_p2p::AddressableTrackedPeers<Ed25519PublicKey>) {
        let _ = commonware_p2p::AddressableManager::track(self, id, peers);
    }
}

/// Start listening on `config.p2p_listen` as `key`, dialing the genesis validators and the
/// `bonded` ones.
pub fn connect(
    context: &commonware_runtime::tokio::Context,
    config: &NodeConfig,
    spec: &ChainSpec,
    key: &Ed25519PrivateKey,
    bonded: &[(Ed25519PublicKey, std::net::SocketAddr)],
) -> Result<NodeNetwork<Production>, NodeError> {
    use commonware_stream::{cups, sake};
    let me = key.public_key();
    let max_message = (spec.params().max_block_bytes + 256 * 1024) as u32;
    let handshake = cups::Cups::<_, commonware_cryptography::ChaCha20Poly1305>::new(
        sake::Sake {
            signer: key.clone(),
            synchrony_bound: Duration::from_secs(5),
            max_handshake_age: Duration::from_secs(10),
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let namespace = format!("tcp/p2p/{}", spec.chain_id.as_str());
    let peers_total = max_peers(config, spec);
    let mut p2p_cfg = commonware_p2p::authenticated::lookup::Config::local(
        handshake,
        namespace.as_bytes(),
        config.p2p_listen,
        NonZeroUsize::new(peers_total).expect("at least this node"),
        max_message,
        NonZeroUsize::new(4096).expect("non-zero"),
    );
    p2p_cfg.block_duration = BLOCK_DURATION;
    let (mut network, mut oracle) = commonware_p2p::authenticated::lookup::Network::new(context.child("p2p"), p2p_cfg);
    let tracked = peer_set(config, spec, &me, bonded)?;
    PeerControl::track(&mut oracle, 0, tracked);
    let nz = |n: u32| NonZeroU32::new(n).expect("non-zero");
    let quota = commonware_runtime::Quota::per_second(nz(CONSENSUS_QUOTA_PER_PEER)).allow_burst(nz(consensus_burst(peers_total)));
    let consensus = network.register(CONSENSUS_CHANNEL, quota);
    let tx_quota = commonware_runtime::Quota::per_second(nz(TRANSACTION_QUOTA_PER_PEER)).allow_burst(nz(TRANSACTION_BURST_PER_PEER));
    let transactions = network.register(TRANSACTION_CHANNEL, tx_quota);
    network.start();
    Ok(NodeNetwork { peers: oracle, consensus, transactions })
}

/// Bonded validators beyond the genesis set that the peer set makes room for (commonware sizes
/// its queues by the peer-set bound, so it is kept modest).
pub const MAX_BONDED_PEERS: usize = 64;

fn max_peers(config: &NodeConfig, spec: &ChainSpec) -> usize {
    spec.validators.len() + config.followers.len() + 1 + MAX_BONDED_PEERS
}

/// The peers to track: the genesis validators and `validators` (bonded ones, with their
/// registered addresses) as primary (dialed), configured followers (and this node, if it is
/// not a validator) as secondary (let in).
pub fn peer_set(
    config: &NodeConfig,
    spec: &ChainSpec,
    me: &Ed25519PublicKey,
    validators: &[(Ed25519PublicKey, std::net::SocketAddr)],
) -> Result<commonware_p2p::AddressableTrackedPeers<Ed25519PublicKey>, NodeError> {
    let mut primary: Vec<(Ed25519PublicKey, commonware_p2p::Address)> =
        spec.validators.iter().map(|v| (v.key.clone(), v.p2p_address.into())).collect();
    let room = primary.len() + MAX_BONDED_PEERS;
    for (key, address) in validators {
        if primary.len() >= room {
            tracing::warn!(bonded = validators.len(), "more bonded validators than the p2p peer set holds; the rest are not dialed");
            break;
        }
        if !primary.iter().any(|(k, _)| k == key) {
            primary.push((key.clone(), (*address).into()));
        }
    }
    let mut secondary: Vec<(Ed25519PublicKey, commonware_p2p::Address)> = Vec::new();
    for f in &config.followers {
        let key = crate::genesis::decode_ed25519_public(&f.key).map_err(|e| NodeError::Config(format!("follower {}: {e}", f.name)))?;
        if !primary.iter().any(|(k, _)| *k == key) {
            secondary.push((key, f.p2p_address.into()));
        }
    }
    if !primary.iter().any(|(k, _)| k == me) && !secondary.iter().any(|(k, _)| k == me) {
        secondary.push((me.clone(), config.p2p_address.into()));
    }
    let to_map = |v: Vec<(Ed25519PublicKey, commonware_p2p::Address)>| -> Result<commonware_utils::ordered::Map<_, _>, NodeError> {
        v.try_into().map_err(|_| NodeError::Config("a peer is listed twice".into()))
    };
    Ok(commonware_p2p::AddressableTrackedPeers::new(to_map(primary)?, to_map(secondary)?))
}
