//! What the enclave's process tests share: the binary, example contracts, a development
//! platform and the host-side requests every test makes.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tcp_attestation::{DevPki, PlatformTcb, Registration};
use tcp_enclave::channel::{PROTOCOL_VERSION, Request, Response};
use tcp_enclave::host::{EnclaveHost, HostError};
use tcp_enclave::process::{BackendChoice, EnclaveArgs};

pub mod group;

pub const BIN: &str = env!("CARGO_BIN_EXE_tcp-enclave");

pub fn code(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../contracts/wasm/{}.wasm", name.replace('-', "_")))).unwrap()
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// A test's directory, removed when the test ends, passing or not.
pub struct TestDir(pub PathBuf);

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A development platform file in a fresh directory, and the root CA that signs for it.
pub fn dev_platform(tag: &str) -> (TestDir, PathBuf, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("tcp-enclave-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(0xe7c1a5e);
    let pki = DevPki::generate(&mut rng, now() - 3600, Duration::from_secs(30 * 86_400)).unwrap();
    let platform = pki.issue_platform(&mut rng, PlatformTcb::default(), [0, 0x90, 0x6e, 0xd5, 0, 0]).unwrap();
    let path = dir.join("dev-platform.json");
    std::fs::write(&path, platform.to_json().as_bytes()).unwrap();
    (TestDir(dir), path, pki.root_ca_der())
}

pub fn simulated(path: PathBuf, tee: &str) -> EnclaveArgs {
    EnclaveArgs { backend: BackendChoice::Simulated, tee: Some(tee.into()), dev_platform: Some(path), ..Default::default() }
}

pub fn measurement() -> [u8; 32] {
    tcp_crypto::sha256(&[&std::fs::read(BIN).unwrap()]).0
}

pub fn hello(host: &mut EnclaveHost) -> ([u8; 32], [u8; 32], String, bool) {
    match host.request(&Request::Hello).unwrap() {
        Response::Hello { measurement, version, enclave_key, backend, simulated, .. } => {
            assert_eq!(version, PROTOCOL_VERSION);
            (measurement, enclave_key, backend, simulated)
        }
        other => panic!("{other:?}"),
    }
}

pub fn output(response: Response) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    match response {
        Response::Output { state, result, signature, .. } => (state, result, signature),
        other => panic!("expected an output, got {other:?}"),
    }
}

/// An output's parts and the fuel it used (what its signature also covers).
pub fn output_with_fuel(response: Response) -> (Vec<u8>, Vec<u8>, Vec<u8>, u64) {
    match response {
        Response::Output { state, result, signature, fuel_used } => (state, result, signature, fuel_used),
        other => panic!("expected an output, got {other:?}"),
    }
}

pub fn load(host: &mut EnclaveHost, code: Vec<u8>) -> [u8; 32] {
    match host.request(&Request::Load { code }).unwrap() {
        Response::Loaded { code_hash } => code_hash,
        other => panic!("{other:?}"),
    }
}

pub fn expect_error(response: Result<Response, HostError>, needle: &str) {
    match response.unwrap() {
        Response::Error { message } => assert!(message.contains(needle), "{message}"),
        other => panic!("expected an error containing {needle:?}, got {other:?}"),
    }
}

/// The chain keys the tests' enclaves pin.
pub fn chain_keys() -> tcp_attestation::ChainKeys {
    tcp_attestation::ChainKeys { group_key: [0x61; 96], master_key: [0x62; 96] }
}

/// The registration the enclave's quote names: its own keys, for `chain_id` at `freshness`,
/// with [`chain_keys`].
pub fn registration_of(host: &mut EnclaveHost, chain_id: &str, freshness: [u8; 32]) -> Registration {
    let Response::Hello { enclave_key, signing_key, .. } = host.request(&Request::Hello).unwrap() else { panic!("hello") };
    Registration {
        chain_id: tcp_types::ChainId::new(chain_id).unwrap(),
        freshness,
        chain_keys: chain_keys().digest(),
        signing_key,
        x25519_key: enclave_key,
    }
}
