//! A TCP node. Work in progress (issue 4): the mempool is here; p2p, storage, sync, RPC and
//! the process wiring follow.

pub mod mempool;

pub use mempool::{Admitted, Mempool, MempoolError, MempoolLimits};
