//! A TCP node (DESIGN §2–§5.3): consensus with the beacon over authenticated p2p
//! (`commonware-p2p`), blocks of account transfers, storage with crash recovery, sync, the
//! mempool and JSON-RPC.
//!
//! * [`genesis`]: the chain's genesis and a node's configuration (JSON at the edge).
//! * [`block`]: the block format and its bounded decoding.
//! * [`store`]: the chain database (redb) and the consensus WAL, on a [`disk`].
//! * [`wire`]: what nodes send each other, decoded with bounds; [`p2p`]: the authenticated network.
//! * [`node`]: the event loop that wires consensus, beacon, state, mempool, disk and network.
//! * [`proof`]: state proofs in JSON (the RPC's form, read back by the CLI).
//! * [`rpc`]: JSON-RPC 2.0 over HTTP and WebSocket subscriptions; [`client`] calls it.
//! * [`mempool`], [`keystore`]: pending transactions; account key files.

pub mod block;
pub mod client;
pub mod disk;
pub mod genesis;
pub mod keystore;
pub mod mempool;
pub mod node;
pub mod p2p;
pub mod proof;
pub mod reshare;
pub mod rpc;
pub mod store;
pub mod wire;

pub use keystore::{KeyInfo, KeyStore, KeyStoreError};
pub use mempool::{Admitted, Mempool, MempoolError, MempoolLimits};

/// What stops a node from starting or running. Input from outside never produces one: it is
/// refused and counted instead.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("data directory is unusable: {0}")]
    Corrupt(String),
    #[error("network: {0}")]
    Network(String),
}
