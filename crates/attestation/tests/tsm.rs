//! The configfs-tsm backend against a fake kernel: a report interface that behaves like
//! configfs-tsm (entries with `provider`, `generation`, `inblob`, `outblob`) and quotes with the
//! simulated TDX machinery. This machine has no TEE; the test checks our side of the protocol:
//! the quote is over our report data and verifies on the one path, the entry is removed, a
//! concurrent writer and missing collateral are refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tcp_attestation::backend::{QuoteError, ReportInterface};
use tcp_attestation::{
    DevPki, DevPlatform, EnclaveIdentity, PlatformTcb, Policy, QuoteBackend, SimulatedBackend, Tee, TsmBackend, Verifier,
    simulated_identity,
};

mod common;
use common::report_data;

const START: u64 = 1_793_491_200;
const MRTD: [u8; 32] = [0x3d; 32];

#[derive(Default)]
struct Entry {
    generation: u64,
    outblob: Vec<u8>,
}

/// A TDX guest's kernel, as far as configfs-tsm shows it.
struct FakeKernel {
    quoting: SimulatedBackend,
    /// Shared so that a test still sees them once the kernel is boxed into the backend.
    entries: Arc<Mutex<HashMap<PathBuf, Entry>>>,
    /// Another process writes each entry's inblob right after ours.
    interfering: bool,
    removed: Arc<Mutex<usize>>,
}

impl ReportInterface for FakeKernel {
    fn create_entry(&self, path: &Path) -> std::io::Result<()> {
        let mut entries = self.entries.lock().unwrap();
        if entries.contains_key(path) {
            return Err(std::io::ErrorKind::AlreadyExists.into());
        }
        entries.insert(path.to_path_buf(), Entry::default());
        Ok(())
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let entries = self.entries.lock().unwrap();
        let entry = entries.get(path.parent().unwrap()).ok_or(std::io::ErrorKind::NotFound)?;
        match path.file_name().unwrap().to_str().unwrap() {
            "provider" => Ok(b"tdx_guest\n".to_vec()),
            "generation" => Ok(format!("{}\n", entry.generation).into_bytes()),
            "outblob" => Ok(entry.outblob.clone()),
            _ => Err(std::io::ErrorKind::NotFound.into()),
        }
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        assert_eq!(path.file_name().unwrap(), "inblob");
        let report: [u8; 64] = bytes.try_into().map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        let mut entries = self.entries.lock().unwrap();
        let entry = entries.get_mut(path.parent().unwrap()).ok_or(std::io::ErrorKind::NotFound)?;
        entry.outblob = self.quoting.quote(&EnclaveIdentity { measurement: MRTD, debug: false }, &report).unwrap().quote;
        entry.generation += if self.interfering { 2 } else { 1 };
        Ok(())
    }

    fn remove_entry(&self, path: &Path) -> std::io::Result<()> {
        self.entries.lock().unwrap().remove(path).ok_or(std::io::ErrorKind::NotFound)?;
        *self.removed.lock().unwrap() += 1;
        Ok(())
    }
}

fn setup(interfering: bool) -> (FakeKernel, Vec<u8>, String) {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let pki = DevPki::generate(&mut rng, START, Duration::from_secs(365 * 86_400)).unwrap();
    let platform = pki.issue_platform(&mut rng, PlatformTcb::default(), [0, 0x90, 0x6e, 0xd5, 0, 0]).unwrap();
    let collateral = platform.collateral(Tee::Tdx).to_string();
    let quoting = SimulatedBackend::new(DevPlatform::from_json(&platform.to_json()).unwrap(), Tee::Tdx, &mut rng);
    (FakeKernel { quoting, entries: Arc::default(), interfering, removed: Arc::default() }, pki.root_ca_der(), collateral)
}

fn collateral_file(name: &str, collateral: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tcp-tsm-test-{name}-{}.json", std::process::id()));
    std::fs::write(&path, collateral).unwrap();
    path
}

#[test]
fn a_tsm_quote_is_over_our_report_data_and_verifies() {
    let (kernel, root, collateral) = setup(false);
    let path = collateral_file("ok", &collateral);
    let backend = TsmBackend::with_interface(Box::new(kernel), PathBuf::from("/fake/tsm/report"), path.clone()).unwrap();
    assert_eq!(backend.provider(), "tdx_guest");
    assert!(!backend.is_simulated() && backend.describe().contains("tdx_guest"));

    let expected = report_data(&[0x44; 32], &[0x55; 32]);
    // The enclave identity the caller passes is ignored: the hardware states the measurement.
    let evidence = backend.quote(&EnclaveIdentity { measurement: [0; 32], debug: true }, &expected).unwrap();
    let identity = simulated_identity(Tee::Tdx, &EnclaveIdentity { measurement: MRTD, debug: false });
    let policy = Policy { measurements: vec![identity], ..Policy::default() };
    let attested =
        Verifier::new(vec![root], policy, false).unwrap().verify(&evidence.quote, &evidence.collateral, START + 60, &expected).unwrap();
    assert_eq!(attested.measurement, identity);
    assert_eq!(attested.report_data, expected);
    assert!(matches!(backend.sealing_root(), Err(QuoteError::NoSealing(_))));
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_concurrent_writer_and_missing_collateral_are_refused_and_entries_are_removed() {
    let (kernel, _, collateral) = setup(true);
    let path = collateral_file("busy", &collateral);
    let backend = TsmBackend::with_interface(Box::new(kernel), PathBuf::from("/fake/tsm/report"), path.clone()).unwrap();
    let result = backend.quote(&EnclaveIdentity { measurement: MRTD, debug: false }, &[1; 64]);
    assert!(matches!(result, Err(QuoteError::Tsm(ref e)) if e.contains("concurrently")), "{result:?}");

    let (kernel, _, _) = setup(false);
    let backend =
        TsmBackend::with_interface(Box::new(kernel), PathBuf::from("/fake/tsm/report"), PathBuf::from("/nonexistent/collateral.json"))
            .unwrap();
    let result = backend.quote(&EnclaveIdentity { measurement: MRTD, debug: false }, &[1; 64]);
    assert!(matches!(result, Err(QuoteError::NoCollateral(ref e)) if e.contains("PCCS")), "{result:?}");
    let _ = std::fs::remove_file(path);
}

#[test]
fn every_entry_made_is_removed() {
    let (kernel, _, collateral) = setup(false);
    let path = collateral_file("cleanup", &collateral);
    let (entries, removed) = (kernel.entries.clone(), kernel.removed.clone());
    let backend = TsmBackend::with_interface(Box::new(kernel), PathBuf::from("/fake/tsm/report"), path.clone()).unwrap();
    for i in 0..5u8 {
        backend.quote(&EnclaveIdentity { measurement: MRTD, debug: false }, &[i; 64]).unwrap();
    }
    assert!(entries.lock().unwrap().is_empty(), "no entry is left behind");
    assert_eq!(*removed.lock().unwrap(), 6, "the provider probe and five quotes");
    let _ = std::fs::remove_file(path);
}
