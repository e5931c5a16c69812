//! Quoting backends behind one trait (DESIGN §5.4): `simulated` signs real-format quotes with a
//! development PCK chain; `configfs-tsm` asks the Linux kernel's TSM report interface for a
//! hardware quote. Whatever produced it, a quote is verified on the one path in `Verifier`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::Generate as _;
use rand_core::CryptoRng;
use signature::Signer as _;
use zeroize::Zeroizing;

use crate::dev_pki::{self, DevPlatform, Tee};
use crate::quote::{self, QeCertification, SgxReport, TdReport};

/// A quote and the collateral to verify it (dcap-qvl's `QuoteCollateralV3` as JSON).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub quote: Vec<u8>,
    pub collateral: Vec<u8>,
}

/// The enclave a quote speaks for, as the backend can state it.
#[derive(Clone, Copy, Debug)]
pub struct EnclaveIdentity {
    /// SHA-256 of the enclave binary.
    pub measurement: [u8; 32],
    /// A debug enclave: its memory is open to the host.
    pub debug: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum QuoteError {
    #[error("the TSM report interface failed: {0}")]
    Tsm(String),
    #[error("no collateral for hardware quotes: {0}")]
    NoCollateral(String),
    #[error("this backend has no sealing key: {0}")]
    NoSealing(&'static str),
}

pub trait QuoteBackend: Send + Sync {
    /// For logs and `attest selftest`: which backend, and for `simulated` that it is one.
    fn describe(&self) -> String;
    /// True when quotes prove nothing about hardware.
    fn is_simulated(&self) -> bool;
    /// A quote over `report_data` for `enclave`.
    fn quote(&self, enclave: &EnclaveIdentity, report_data: &[u8; 64]) -> Result<Evidence, QuoteError>;
    /// The platform secret sealing keys derive from (the CPU's seal secret on SGX).
    fn sealing_root(&self) -> Result<Zeroizing<[u8; 32]>, QuoteError>;
}

/// Simulated quoting: the quoting enclave's job done in software with a development platform's
/// PCK key. The attestation key is made once per backend and certified by one QE report, as
/// the real QE does at start-up; each quote then costs one ECDSA signature.
pub struct SimulatedBackend {
    platform: DevPlatform,
    tee: Tee,
    attestation_key: SigningKey,
    attestation_public: [u8; 64],
    qe_report: [u8; quote::SGX_REPORT_LEN],
    qe_report_signature: [u8; 64],
    qe_auth_data: [u8; 32],
}

impl SimulatedBackend {
    pub fn new(platform: DevPlatform, tee: Tee, rng: &mut impl CryptoRng) -> SimulatedBackend {
        let attestation_key = SigningKey::generate_from_rng(rng);
        let point = attestation_key.verifying_key().to_sec1_point(false);
        let mut attestation_public = [0u8; 64];
        attestation_public.copy_from_slice(&point.as_bytes()[1..65]);
        let mut qe_auth_data = [0u8; 32];
        rng.fill_bytes(&mut qe_auth_data);
        let mut report_data = [0u8; 64];
        report_data[..32].copy_from_slice(&tcp_crypto::sha256(&[&attestation_public, &qe_auth_data]).0);
        let qe_report = SgxReport {
            cpu_svn: platform.tcb.cpu_svn,
            misc_select: 0,
            attributes: dev_pki::QE_ATTRIBUTES,
            mr_enclave: tcp_crypto::sha256(&[b"tcp/dev-pki/quoting-enclave", tee.name().as_bytes()]).0,
            mr_signer: dev_pki::dev_qe_mrsigner(),
            isv_prod_id: dev_pki::qe_isvprodid(tee),
            isv_svn: dev_pki::DEV_QE_ISVSVN,
            report_data,
        }
        .encode();
        let signature: Signature = platform.pck_key.sign(&qe_report);
        SimulatedBackend {
            platform,
            tee,
            attestation_key,
            attestation_public,
            qe_report,
            qe_report_signature: signature.to_bytes().into(),
            qe_auth_data,
        }
    }

    /// Load the development platform file `tcpchain init` wrote.
    pub fn from_file(path: &Path, tee: Tee, rng: &mut impl CryptoRng) -> Result<SimulatedBackend, String> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?);
        let platform = DevPlatform::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(SimulatedBackend::new(platform, tee, rng))
    }

    pub fn tee(&self) -> Tee {
        self.tee
    }

    pub fn platform(&self) -> &DevPlatform {
        &self.platform
    }
}

impl QuoteBackend for SimulatedBackend {
    fn describe(&self) -> String {
        format!("simulated {} (development PCK chain; no hardware confidentiality)", self.tee.name().to_uppercase())
    }

    fn is_simulated(&self) -> bool {
        true
    }

    fn quote(&self, enclave: &EnclaveIdentity, report_data: &[u8; 64]) -> Result<Evidence, QuoteError> {
        let tcb = &self.platform.tcb;
        let (version, signed) = match self.tee {
            Tee::Sgx => {
                let mut attributes = [0u8; 16];
                // INIT | MODE64BIT, and DEBUG when asked.
                attributes[0] = 0x05 | if enclave.debug { 0x02 } else { 0 };
                attributes[8] = 0x03; // XFRM: x87 and SSE
                let report = SgxReport {
                    cpu_svn: tcb.cpu_svn,
                    misc_select: 0,
                    attributes,
                    mr_enclave: enclave.measurement,
                    mr_signer: dev_pki::dev_enclave_mrsigner(),
                    isv_prod_id: 0,
                    isv_svn: 0,
                    report_data: *report_data,
                };
                (3, [&quote::header(3, quote::TEE_TYPE_SGX, dev_pki::DEV_QE_ISVSVN, tcb.pce_svn)[..], &report.encode()[..]].concat())
            }
            Tee::Tdx => {
                let report = simulated_td_report(enclave, tcb.tee_tcb_svn, report_data);
                (4, [&quote::header(4, quote::TEE_TYPE_TDX, dev_pki::DEV_QE_ISVSVN, tcb.pce_svn)[..], &report.encode()[..]].concat())
            }
        };
        let isv_signature: Signature = self.attestation_key.sign(&signed);
        let quote = quote::assemble(
            &signed,
            version,
            &isv_signature.to_bytes().into(),
            &self.attestation_public,
            &QeCertification {
                qe_report: &self.qe_report,
                qe_report_signature: &self.qe_report_signature,
                qe_auth_data: &self.qe_auth_data,
                pck_chain_pem: self.platform.pck_chain_pem.as_bytes(),
            },
        );
        Ok(Evidence { quote, collateral: self.platform.collateral(self.tee).as_bytes().to_vec() })
    }

    fn sealing_root(&self) -> Result<Zeroizing<[u8; 32]>, QuoteError> {
        Ok(self.platform.seal_root.clone())
    }
}

/// The TD a simulated TDX quote speaks for, modelled on the deployment `docs/attestation.md`
/// describes: fixed development values for the firmware (MRTD) and what it measures at boot
/// (RTMR0–2), and RTMR3 extended once with the enclave's measurement — as the TD's software
/// would extend it with the `tcp-enclave` binary it starts. SEPT_VE_DISABLE (attribute bit 28)
/// is set, as verifiers require; DEBUG is bit 0.
fn simulated_td_report(enclave: &EnclaveIdentity, tee_tcb_svn: [u8; 16], report_data: &[u8; 64]) -> TdReport {
    let register = |label: &[u8], value: &[u8]| -> [u8; 48] {
        let mut out = [0u8; 48];
        out[..32].copy_from_slice(&tcp_crypto::sha256(&[b"tcp/dev-tdx/", label, value]).0);
        out[32..].copy_from_slice(&tcp_crypto::sha256(&[b"tcp/dev-tdx/high/", label, value]).0[..16]);
        out
    };
    TdReport {
        tee_tcb_svn,
        mr_seam: [0u8; 48],
        mr_signer_seam: dev_pki::dev_tdx_module_mrsigner(),
        seam_attributes: [0u8; 8],
        td_attributes: ((1u64 << 28) | u64::from(enclave.debug)).to_le_bytes(),
        xfam: 0xe7u64.to_le_bytes(),
        mr_td: register(b"mrtd", b"firmware"),
        rt_mr: [
            register(b"rtmr0", b"firmware configuration"),
            register(b"rtmr1", b"kernel"),
            register(b"rtmr2", b"command line and initrd"),
            register(b"rtmr3", &enclave.measurement),
        ],
        report_data: *report_data,
    }
}

/// The identity a policy must allow for `enclave` quoted by a simulated backend of `tee`:
/// its measurement on SGX, the simulated TD's identity on TDX (what `tcpchain init` puts in a
/// development genesis).
pub fn simulated_identity(tee: Tee, enclave: &EnclaveIdentity) -> [u8; 32] {
    match tee {
        Tee::Sgx => enclave.measurement,
        Tee::Tdx => {
            let r = simulated_td_report(enclave, [0; 16], &[0; 64]);
            crate::td_identity(&dcap_qvl::quote::TDReport10 {
                tee_tcb_svn: r.tee_tcb_svn,
                mr_seam: r.mr_seam,
                mr_signer_seam: r.mr_signer_seam,
                seam_attributes: r.seam_attributes,
                td_attributes: r.td_attributes,
                xfam: r.xfam,
                mr_td: r.mr_td,
                // The encoder leaves the host-chosen configuration registers zero.
                mr_config_id: [0; 48],
                mr_owner: [0; 48],
                mr_owner_config: [0; 48],
                rt_mr0: r.rt_mr[0],
                rt_mr1: r.rt_mr[1],
                rt_mr2: r.rt_mr[2],
                rt_mr3: r.rt_mr[3],
                report_data: r.report_data,
            })
        }
    }
}

/// Where the kernel exposes TSM reports (Linux ≥ 6.7, `CONFIG_TSM_REPORTS`).
pub const TSM_REPORT_DIR: &str = "/sys/kernel/config/tsm/report";

/// The configfs operations the TSM backend makes. The kernel's is [`ConfigFs`]; tests put a
/// fake kernel behind it.
pub trait ReportInterface: Send + Sync {
    /// Create a report entry (configfs makes its attribute files).
    fn create_entry(&self, path: &Path) -> std::io::Result<()>;
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()>;
    fn remove_entry(&self, path: &Path) -> std::io::Result<()>;
}

/// The kernel's configfs.
pub struct ConfigFs;

impl ReportInterface for ConfigFs {
    fn create_entry(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir(path)
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::write(path, bytes)
    }
    fn remove_entry(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_dir(path)
    }
}

/// Hardware quotes through configfs-tsm: write 64 bytes of report data to `inblob`, read the
/// quote from `outblob`. The kernel's provider (`tdx_guest` on TDX) fills in the measurement,
/// so the measurement policy names the TD's MRTD rather than a binary hash. Collateral comes
/// from Intel's PCS through the operator's PCCS and is read from a file.
pub struct TsmBackend {
    interface: Box<dyn ReportInterface>,
    report_dir: PathBuf,
    provider: String,
    collateral_path: PathBuf,
}

static TSM_REQUESTS: AtomicU64 = AtomicU64::new(0);

impl TsmBackend {
    /// The TSM backend if this machine has one, with its provider's name.
    pub fn detect(collateral_path: PathBuf) -> Option<TsmBackend> {
        let report_dir = PathBuf::from(TSM_REPORT_DIR);
        if !report_dir.is_dir() {
            return None;
        }
        TsmBackend::with_interface(Box::new(ConfigFs), report_dir, collateral_path).ok()
    }

    /// The backend over `interface` rooted at `report_dir`; the provider is read from a probe
    /// entry (it is only readable inside one).
    pub fn with_interface(
        interface: Box<dyn ReportInterface>,
        report_dir: PathBuf,
        collateral_path: PathBuf,
    ) -> Result<TsmBackend, QuoteError> {
        let mut backend = TsmBackend { interface, report_dir, provider: String::new(), collateral_path };
        let probe = backend.entry()?;
        let provider = backend.interface.read(&probe.join("provider"));
        let _ = backend.interface.remove_entry(&probe);
        backend.provider =
            String::from_utf8_lossy(&provider.map_err(|e| QuoteError::Tsm(format!("reading provider: {e}")))?).trim().to_string();
        Ok(backend)
    }

    pub fn provider(&self) -> &str {
        &self.provider
    }

    fn entry(&self) -> Result<PathBuf, QuoteError> {
        let name = format!("tcp-{}-{}", std::process::id(), TSM_REQUESTS.fetch_add(1, Ordering::Relaxed));
        let dir = self.report_dir.join(name);
        self.interface.create_entry(&dir).map_err(|e| QuoteError::Tsm(format!("mkdir {}: {e}", dir.display())))?;
        Ok(dir)
    }
}

impl QuoteBackend for TsmBackend {
    fn describe(&self) -> String {
        format!("configfs-tsm hardware quotes (provider {})", self.provider)
    }

    fn is_simulated(&self) -> bool {
        false
    }

    fn quote(&self, _enclave: &EnclaveIdentity, report_data: &[u8; 64]) -> Result<Evidence, QuoteError> {
        let collateral = std::fs::read(&self.collateral_path).map_err(|e| {
            QuoteError::NoCollateral(format!("{}: {e} (fetch it for this platform's FMSPC from your PCCS)", self.collateral_path.display()))
        })?;
        let dir = self.entry()?;
        let read = |name: &str| self.interface.read(&dir.join(name)).map_err(|e| QuoteError::Tsm(format!("reading {name}: {e}")));
        let generation = |bytes: Vec<u8>| {
            String::from_utf8_lossy(&bytes).trim().parse::<u64>().map_err(|_| QuoteError::Tsm("unreadable generation".into()))
        };
        let result = (|| {
            let before = generation(read("generation")?)?;
            self.interface.write(&dir.join("inblob"), report_data).map_err(|e| QuoteError::Tsm(format!("writing inblob: {e}")))?;
            let quote = read("outblob")?;
            // Another writer to the same entry would bump the generation again: the quote
            // would then not be over our report data.
            if generation(read("generation")?)? != before + 1 {
                return Err(QuoteError::Tsm("the report entry was written concurrently".into()));
            }
            Ok(quote)
        })();
        let _ = self.interface.remove_entry(&dir);
        Ok(Evidence { quote: result?, collateral })
    }

    fn sealing_root(&self) -> Result<Zeroizing<[u8; 32]>, QuoteError> {
        Err(QuoteError::NoSealing("configfs-tsm offers no key derivation; TDX state is kept under contract keys (DKMP)"))
    }
}
