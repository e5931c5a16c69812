//! A TCP node. Work in progress (issue 4): the mempool and the key store are here; p2p, storage, sync, RPC and
//! the process wiring follow.

pub mod keystore;
pub mod mempool;

pub use keystore::{KeyInfo, KeyStore, KeyStoreError};
pub use mempool::{Admitted, Mempool, MempoolError, MempoolLimits};
