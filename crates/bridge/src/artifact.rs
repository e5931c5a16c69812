//! The committed compilation of `contracts/*.sol` (`artifacts/*.json`).

use crate::BridgeError;
use serde_json::Value;
use tcp_types::hex;

const LIGHT_CLIENT_JSON: &str = include_str!("../artifacts/TcpLightClient.json");
const PLASMA_ROOT_JSON: &str = include_str!("../artifacts/PlasmaRoot.json");
const PAYOUT_ATTACKER_JSON: &str = include_str!("../artifacts/PayoutAttacker.json");
/// The sources the artifacts were compiled from, to check they match.
pub const LIGHT_CLIENT_SOURCE: &str = include_str!("../contracts/TcpLightClient.sol");
pub const PLASMA_ROOT_SOURCE: &str = include_str!("../contracts/PlasmaRoot.sol");
pub const PAYOUT_ATTACKER_SOURCE: &str = include_str!("../contracts/test/PayoutAttacker.sol");

#[derive(Clone, Debug)]
pub struct Artifact {
    pub contract: String,
    pub compiler: String,
    pub source_sha256: String,
    pub abi: Value,
    /// Creation code (constructor arguments are appended).
    pub bytecode: Vec<u8>,
    pub deployed_bytecode: Vec<u8>,
}

impl Artifact {
    pub fn parse(json: &str) -> Result<Artifact, BridgeError> {
        let v: Value = serde_json::from_str(json).map_err(|e| BridgeError::Artifact(e.to_string()))?;
        let text = |name: &str| v[name].as_str().map(str::to_string).ok_or_else(|| BridgeError::Artifact(format!("no {name}")));
        let code = |name: &str| hex::decode(&text(name)?).map_err(|e| BridgeError::Artifact(format!("{name}: {e}")));
        Ok(Artifact {
            contract: text("contract")?,
            compiler: text("compiler")?,
            source_sha256: text("source_sha256")?,
            abi: v["abi"].clone(),
            bytecode: code("bytecode")?,
            deployed_bytecode: code("deployed_bytecode")?,
        })
    }
}

/// `TcpLightClient`: verifies a TCP header and its φ against the group key set at deployment.
pub fn light_client() -> Artifact {
    Artifact::parse(LIGHT_CLIENT_JSON).expect("the committed artifact parses (checked by a test)")
}

/// `PlasmaRoot`: deposits, checkpoints, the exit game (docs/bridge.md).
pub fn plasma_root() -> Artifact {
    Artifact::parse(PLASMA_ROOT_JSON).expect("the committed artifact parses (checked by a test)")
}

/// `PayoutAttacker`: a payout recipient that refuses payment or re-enters (tests only).
pub fn payout_attacker() -> Artifact {
    Artifact::parse(PAYOUT_ATTACKER_JSON).expect("the committed artifact parses (checked by a test)")
}
