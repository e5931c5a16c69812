//! TCP on Ethereum (DESIGN §5.7): the Solidity contracts and what Rust needs to use them.
//!
//! * [`artifact`]: the compiled contracts, committed (`scripts/build-solidity.sh` builds them
//!   with npm `solc`, version pinned; `--check` proves the artifact is what the sources give).
//! * [`calldata`]: ABI encoding of the light client's constructor and `verifyHeader`, and TCP's
//!   compressed BLS points in EIP-2537's uncompressed encoding.
//! * [`evm`]: an Ethereum chain in process (revm, Prague rules), the devnet's and the tests'
//!   root chain.
//! * [`plasma`]: `PlasmaRoot`'s ABI, its parameters, and the inbox TCP reads from its logs.
//! * [`rootchain`]: what TCP needs of the root chain, one interface implemented by the embedded
//!   chain and by [`jsonrpc`] (any Ethereum node); [`tx`]: the transactions the tools sign.

pub mod artifact;
pub mod calldata;
pub mod embedded_rpc;
pub mod evm;
pub mod plasma;
pub mod jsonrpc;
pub mod rootchain;
pub mod service;
pub mod tx;

pub use artifact::{Artifact, light_client, payout_attacker, plasma_root};
pub use evm::{CallOutcome, ChainLog, EmbeddedChain};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BridgeError {
    #[error("artifact: {0}")]
    Artifact(String),
    #[error("not a valid point: {0}")]
    BadPoint(&'static str),
    #[error("root chain: {0}")]
    Chain(String),
}
