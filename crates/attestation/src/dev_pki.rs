//! The development PKI: a certificate hierarchy shaped like Intel's (root CA → PCK CA → PCK
//! certificate carrying the SGX extension; root CA → TCB signing certificate), its two CRLs,
//! and the TCB-info and QE-identity collateral signed with it. `tcpchain init` makes one for a
//! development chain and names its root in genesis; the simulated quoting backend signs with
//! the PCK key it issues. Quotes signed this way verify on exactly the path hardware quotes
//! take, and they prove nothing about hardware: a production chain refuses this root.

use std::str::FromStr as _;
use std::time::Duration;

use p256::ecdsa::{DerSignature, Signature, SigningKey};
use p256::elliptic_curve::Generate as _;
use rand_core::CryptoRng;
use signature::Signer as _;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder as _, CertificateBuilder, CrlBuilder};
use x509_cert::certificate::{Certificate, TbsCertificate};
use x509_cert::der::asn1::{OctetString, Uint, UtcTime};
use x509_cert::der::pem::LineEnding;
use x509_cert::der::{DateTime, Encode as _, EncodePem as _};
use x509_cert::ext::pkix::{BasicConstraints, CrlNumber, KeyUsage, KeyUsages, SubjectKeyIdentifier};
use x509_cert::ext::{Extension, ToExtension as _};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{SubjectPublicKeyInfo, SubjectPublicKeyInfoRef};
use x509_cert::time::{Time, Validity};
use zeroize::Zeroizing;

use crate::TcbRank;

/// Which TEE a quote comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tee {
    /// SGX enclave, quote v3.
    Sgx,
    /// TDX trust domain, quote v4.
    Tdx,
}

impl Tee {
    pub fn parse(name: &str) -> Option<Tee> {
        match name {
            "sgx" => Some(Tee::Sgx),
            "tdx" => Some(Tee::Tdx),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tee::Sgx => "sgx",
            Tee::Tdx => "tdx",
        }
    }
}

/// A platform's security versions, as its PCK certificate states them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlatformTcb {
    pub cpu_svn: [u8; 16],
    pub pce_svn: u16,
    /// TDX: TEE_TCB_SVN. Byte 1 (the TDX module version) stays 0, so the module is judged by
    /// the TCB-info's `tdxModule` alone.
    pub tee_tcb_svn: [u8; 16],
    /// The configuration a multi-package platform's PCK certificate (Platform CA) states;
    /// all None, as on a single-package platform (Processor CA), leaves it out.
    pub flags: crate::PlatformFlags,
}

impl Default for PlatformTcb {
    fn default() -> Self {
        PlatformTcb {
            cpu_svn: [3, 3, 2, 2, 3, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0],
            pce_svn: 13,
            tee_tcb_svn: [3, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            flags: crate::PlatformFlags::default(),
        }
    }
}

/// The simulated quoting enclaves' identity, published in the QE-identity collateral.
pub const DEV_QE_ISVSVN: u16 = 8;
pub fn dev_qe_mrsigner() -> [u8; 32] {
    tcp_crypto::sha256(&[b"tcp/dev-pki/quoting-enclave-signer"]).0
}
/// MRSIGNER of enclaves the simulated backend reports: the development signer.
pub fn dev_enclave_mrsigner() -> [u8; 32] {
    tcp_crypto::sha256(&[b"tcp/dev-pki/enclave-signer"]).0
}
/// The simulated TDX module's signer (MRSIGNER_SEAM), 48 bytes.
pub fn dev_tdx_module_mrsigner() -> [u8; 48] {
    let a = tcp_crypto::sha256(&[b"tcp/dev-pki/tdx-module-signer", &[0]]).0;
    let b = tcp_crypto::sha256(&[b"tcp/dev-pki/tdx-module-signer", &[1]]).0;
    let mut out = [0u8; 48];
    out[..32].copy_from_slice(&a);
    out[32..].copy_from_slice(&b[..16]);
    out
}
/// The QE product ids Intel uses: 1 for the SGX QE, 2 for the TDX QE.
pub fn qe_isvprodid(tee: Tee) -> u16 {
    match tee {
        Tee::Sgx => 1,
        Tee::Tdx => 2,
    }
}
/// QE attributes: INIT and MODE64BIT set, DEBUG clear.
pub const QE_ATTRIBUTES: [u8; 16] = [0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("building a certificate or CRL failed: {0}")]
    Build(String),
    #[error("malformed development platform file: {0}")]
    Malformed(String),
}

fn build_err(e: impl std::fmt::Display) -> PkiError {
    PkiError::Build(e.to_string())
}

/// A certificate authority of the development hierarchy.
struct Authority {
    key: SigningKey,
    certificate: Certificate,
}

/// The development hierarchy with its private keys: what `tcpchain init` creates, issues a
/// platform from, and then discards (only the root certificate goes on in genesis).
pub struct DevPki {
    root: Authority,
    pck_ca: Authority,
    tcb_signer: Authority,
    valid_from: u64,
    valid_until: u64,
}

/// Names follow Intel's so that every tool classifies the certificates the same way; the
/// organisation says what they are.
const ORG: &str = "O=TCP development PKI (simulated TEE: no hardware confidentiality)";

impl DevPki {
    /// A new hierarchy valid from `valid_from` (Unix seconds) for `lifetime`.
    pub fn generate(rng: &mut impl CryptoRng, valid_from: u64, lifetime: Duration) -> Result<DevPki, PkiError> {
        let valid_until = valid_from + lifetime.as_secs();
        let validity = validity(valid_from, valid_until)?;
        let root_name = name(&format!("CN=TCP Dev SGX Root CA,{ORG}"))?;
        let root_key = SigningKey::generate_from_rng(rng);
        let root_cert = issue(&root_key, &root_key, None, root_name.clone(), 1, validity, Kind::Ca { path_len: 1 })?;
        let pck_ca_key = SigningKey::generate_from_rng(rng);
        let pck_ca_cert = issue(
            &pck_ca_key,
            &root_key,
            Some(&root_cert),
            name(&format!("CN=TCP Dev SGX PCK Processor CA,{ORG}"))?,
            2,
            validity,
            Kind::Ca { path_len: 0 },
        )?;
        let tcb_key = SigningKey::generate_from_rng(rng);
        let tcb_cert = issue(
            &tcb_key,
            &root_key,
            Some(&root_cert),
            name(&format!("CN=TCP Dev SGX TCB Signing,{ORG}"))?,
            3,
            validity,
            Kind::Leaf { sgx_extension: None },
        )?;
        Ok(DevPki {
            root: Authority { key: root_key, certificate: root_cert },
            pck_ca: Authority { key: pck_ca_key, certificate: pck_ca_cert },
            tcb_signer: Authority { key: tcb_key, certificate: tcb_cert },
            valid_from,
            valid_until,
        })
    }

    /// The root CA certificate (DER): what genesis names.
    pub fn root_ca_der(&self) -> Vec<u8> {
        self.root.certificate.to_der().expect("a built certificate encodes")
    }

    /// Issue a simulated platform: a fresh PCK key and certificate for `tcb` and `fmspc`, with
    /// collateral that rates that TCB `UpToDate`.
    pub fn issue_platform(&self, rng: &mut impl CryptoRng, tcb: PlatformTcb, fmspc: [u8; 6]) -> Result<DevPlatform, PkiError> {
        let pck_key = SigningKey::generate_from_rng(rng);
        let mut ppid = [0u8; 16];
        rng.fill_bytes(&mut ppid);
        let extension = sgx_extension(&ppid, &tcb, &fmspc);
        let pck_cert = issue(
            &pck_key,
            &self.pck_ca.key,
            Some(&self.pck_ca.certificate),
            name(&format!("CN=TCP Dev SGX PCK Certificate,{ORG}"))?,
            u32::from_be_bytes([ppid[0] & 0x7f, ppid[1], ppid[2], ppid[3]]).max(16),
            validity(self.valid_from, self.valid_until)?,
            Kind::Leaf { sgx_extension: Some(extension) },
        )?;
        let pck_chain_pem = [pem(&pck_cert)?, pem(&self.pck_ca.certificate)?, pem(&self.root.certificate)?].concat();
        let mut seal_root = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seal_root.as_mut());
        let collateral = [Tee::Sgx, Tee::Tdx]
            .map(|tee| self.collateral(tee, &tcb, &fmspc, TcbRank::UpToDate, self.valid_from, self.valid_until))
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DevPlatform {
            pck_key,
            pck_chain_pem,
            tcb,
            fmspc,
            root_ca_der: self.root_ca_der(),
            seal_root,
            collateral_sgx: collateral[0].clone(),
            collateral_tdx: collateral[1].clone(),
        })
    }

    /// Collateral (dcap-qvl's `QuoteCollateralV3`, as JSON) for quotes of `tee` from a platform
    /// with `tcb` and `fmspc`. The TCB-info rates that TCB `status`: when it is not
    /// `UpToDate`, a higher level (CPU SVN component 0 raised by one) is the up-to-date one.
    pub fn collateral(
        &self,
        tee: Tee,
        tcb: &PlatformTcb,
        fmspc: &[u8; 6],
        status: TcbRank,
        issued: u64,
        next_update: u64,
    ) -> Result<String, PkiError> {
        let mut levels = Vec::new();
        if status != TcbRank::UpToDate {
            let mut newer = *tcb;
            newer.cpu_svn[0] = newer.cpu_svn[0].saturating_add(1);
            levels.push(tcb_level(tee, &newer, TcbRank::UpToDate, issued));
        }
        levels.push(tcb_level(tee, tcb, status, issued));
        let mut tcb_info = serde_json::json!({
            "id": match tee { Tee::Sgx => "SGX", Tee::Tdx => "TDX" },
            "version": 3,
            "issueDate": rfc3339(issued)?,
            "nextUpdate": rfc3339(next_update)?,
            "fmspc": tcp_types::hex::encode(fmspc),
            "pceId": "0000",
            "tcbType": 0,
            "tcbEvaluationDataNumber": 1,
            "tcbLevels": levels,
        });
        if tee == Tee::Tdx {
            tcb_info["tdxModule"] = serde_json::json!({
                "mrsigner": tcp_types::hex::encode(&dev_tdx_module_mrsigner()),
                "attributes": "0000000000000000",
                "attributesMask": "FFFFFFFFFFFFFFFF",
            });
        }
        let qe_identity = serde_json::json!({
            "id": match tee { Tee::Sgx => "QE", Tee::Tdx => "TD_QE" },
            "version": 2,
            "issueDate": rfc3339(issued)?,
            "nextUpdate": rfc3339(next_update)?,
            "tcbEvaluationDataNumber": 1,
            "miscselect": "00000000",
            "miscselectMask": "FFFFFFFF",
            "attributes": tcp_types::hex::encode(&QE_ATTRIBUTES),
            "attributesMask": "FBFFFFFFFFFFFFFF0000000000000000",
            "mrsigner": tcp_types::hex::encode(&dev_qe_mrsigner()),
            "isvprodid": qe_isvprodid(tee),
            "tcbLevels": [{ "tcb": { "isvsvn": DEV_QE_ISVSVN }, "tcbDate": rfc3339(issued)?, "tcbStatus": "UpToDate" }],
        });
        let tcb_info = tcb_info.to_string();
        let qe_identity = qe_identity.to_string();
        let tcb_chain = [pem(&self.tcb_signer.certificate)?, pem(&self.root.certificate)?].concat();
        let sign = |body: &str| -> String {
            let signature: Signature = self.tcb_signer.key.sign(body.as_bytes());
            tcp_types::hex::encode(&signature.to_bytes())
        };
        let pck_crl_chain = [pem(&self.pck_ca.certificate)?, pem(&self.root.certificate)?].concat();
        let collateral = serde_json::json!({
            "pck_crl_issuer_chain": pck_crl_chain,
            "root_ca_crl": tcp_types::hex::encode(&self.crl(&self.root, issued, next_update)?),
            "pck_crl": tcp_types::hex::encode(&self.crl(&self.pck_ca, issued, next_update)?),
            "tcb_info_issuer_chain": tcb_chain,
            "tcb_info_signature": sign(&tcb_info),
            "tcb_info": tcb_info,
            "qe_identity_issuer_chain": tcb_chain,
            "qe_identity_signature": sign(&qe_identity),
            "qe_identity": qe_identity,
        });
        Ok(collateral.to_string())
    }

    /// An empty CRL from `authority` (nothing is revoked in the development hierarchy).
    fn crl(&self, authority: &Authority, this_update: u64, next_update: u64) -> Result<Vec<u8>, PkiError> {
        let number = CrlNumber(Uint::new(&[1]).map_err(build_err)?);
        let crl = CrlBuilder::<x509_cert::certificate::Rfc5280>::new_with_this_update(&authority.certificate, number, utc(this_update)?)
            .map_err(build_err)?
            .with_next_update(Some(utc(next_update)?))
            .build::<_, DerSignature>(&authority.key)
            .map_err(build_err)?;
        crl.to_der().map_err(build_err)
    }
}

fn tcb_level(tee: Tee, tcb: &PlatformTcb, status: TcbRank, date: u64) -> serde_json::Value {
    let components = |svns: &[u8; 16]| svns.iter().map(|svn| serde_json::json!({ "svn": svn })).collect::<Vec<_>>();
    let mut level_tcb = serde_json::json!({ "sgxtcbcomponents": components(&tcb.cpu_svn), "pcesvn": tcb.pce_svn });
    if tee == Tee::Tdx {
        level_tcb["tdxtcbcomponents"] = components(&tcb.tee_tcb_svn).into();
    }
    serde_json::json!({
        "tcb": level_tcb,
        "tcbDate": rfc3339(date).unwrap_or_default(),
        "tcbStatus": status.intel_name(),
        "advisoryIDs": if status == TcbRank::UpToDate { vec![] } else { vec!["TCP-DEV-SA-0001"] },
    })
}

/// What a simulated machine holds: its PCK key and chain, its sealing root (the analogue of
/// the CPU's fused seal secret) and the collateral for its quotes. Stored 0600 by
/// `tcpchain init`; never in genesis.
pub struct DevPlatform {
    pub(crate) pck_key: SigningKey,
    pub(crate) pck_chain_pem: String,
    pub tcb: PlatformTcb,
    pub fmspc: [u8; 6],
    pub root_ca_der: Vec<u8>,
    pub(crate) seal_root: Zeroizing<[u8; 32]>,
    pub collateral_sgx: String,
    pub collateral_tdx: String,
}

impl DevPlatform {
    pub fn collateral(&self, tee: Tee) -> &str {
        match tee {
            Tee::Sgx => &self.collateral_sgx,
            Tee::Tdx => &self.collateral_tdx,
        }
    }

    /// Replace the collateral of `tee` (tests: expired or out-of-date collateral).
    pub fn set_collateral(&mut self, tee: Tee, collateral: String) {
        match tee {
            Tee::Sgx => self.collateral_sgx = collateral,
            Tee::Tdx => self.collateral_tdx = collateral,
        }
    }

    /// The file form. It holds the PCK private key and the seal root: write it 0600.
    pub fn to_json(&self) -> Zeroizing<String> {
        let pck_key = Zeroizing::new(self.pck_key.to_bytes());
        // `json!` copies the strings it is given: the hex forms of the secrets are wiped here,
        // their copies in the value by `wipe_secret_fields`.
        let pck_key_hex = Zeroizing::new(tcp_types::hex::encode(pck_key.as_slice()));
        let seal_root_hex = Zeroizing::new(tcp_types::hex::encode(self.seal_root.as_ref()));
        let mut value = serde_json::json!({
            "kind": "tcp-dev-platform",
            "warning": "simulated TEE: these keys sign development quotes and give no hardware confidentiality",
            "pck_key": pck_key_hex.as_str(),
            "pck_chain": self.pck_chain_pem,
            "cpu_svn": tcp_types::hex::encode(&self.tcb.cpu_svn),
            "pce_svn": self.tcb.pce_svn,
            "tee_tcb_svn": tcp_types::hex::encode(&self.tcb.tee_tcb_svn),
            "fmspc": tcp_types::hex::encode(&self.fmspc),
            "root_ca": tcp_types::hex::encode(&self.root_ca_der),
            "seal_root": seal_root_hex.as_str(),
            "collateral_sgx": self.collateral_sgx,
            "collateral_tdx": self.collateral_tdx,
        });
        let text = Zeroizing::new(serde_json::to_string_pretty(&value).expect("JSON values serialise"));
        wipe_secret_fields(&mut value);
        text
    }

    pub fn from_json(text: &str) -> Result<DevPlatform, PkiError> {
        let mut value: serde_json::Value = serde_json::from_str(text).map_err(|e| PkiError::Malformed(e.to_string()))?;
        let platform = DevPlatform::from_value(&value);
        wipe_secret_fields(&mut value);
        platform
    }

    fn from_value(value: &serde_json::Value) -> Result<DevPlatform, PkiError> {
        if value["kind"] != "tcp-dev-platform" {
            return Err(PkiError::Malformed("not a tcp-dev-platform file".into()));
        }
        let field = |name: &str| value[name].as_str().ok_or_else(|| PkiError::Malformed(format!("missing field {name}")));
        let bytes = |name: &str| -> Result<Zeroizing<Vec<u8>>, PkiError> {
            tcp_types::hex::decode(field(name)?).map(Zeroizing::new).map_err(|e| PkiError::Malformed(format!("{name}: {e}")))
        };
        fn fixed<const N: usize>(name: &str, bytes: &[u8]) -> Result<[u8; N], PkiError> {
            bytes.try_into().map_err(|_| PkiError::Malformed(format!("{name} must be {N} bytes")))
        }
        let pck_key = SigningKey::from_slice(&bytes("pck_key")?).map_err(|e| PkiError::Malformed(format!("pck_key: {e}")))?;
        let pce_svn = value["pce_svn"].as_u64().and_then(|v| u16::try_from(v).ok()).ok_or_else(|| PkiError::Malformed("pce_svn".into()))?;
        Ok(DevPlatform {
            pck_key,
            pck_chain_pem: field("pck_chain")?.to_string(),
            tcb: PlatformTcb {
                cpu_svn: fixed("cpu_svn", &bytes("cpu_svn")?)?,
                pce_svn,
                tee_tcb_svn: fixed("tee_tcb_svn", &bytes("tee_tcb_svn")?)?,
                // Only the certificate states them, and the chain is kept as issued.
                flags: crate::PlatformFlags::default(),
            },
            fmspc: fixed("fmspc", &bytes("fmspc")?)?,
            root_ca_der: bytes("root_ca")?.to_vec(),
            seal_root: Zeroizing::new(fixed("seal_root", &bytes("seal_root")?)?),
            collateral_sgx: field("collateral_sgx")?.to_string(),
            collateral_tdx: field("collateral_tdx")?.to_string(),
        })
    }
}

/// The fields of a platform file that hold secrets (the PCK private key, the seal root).
const SECRET_FIELDS: [&str; 2] = ["pck_key", "seal_root"];

/// Overwrite the secrets a parsed or built platform file holds before its JSON value is
/// dropped (a `serde_json::Value` does not wipe its strings).
fn wipe_secret_fields(value: &mut serde_json::Value) {
    for name in SECRET_FIELDS {
        if let Some(serde_json::Value::String(secret)) = value.get_mut(name) {
            zeroize::Zeroize::zeroize(secret);
        }
    }
}

enum Kind {
    Ca { path_len: u8 },
    Leaf { sgx_extension: Option<Vec<u8>> },
}

/// Our certificate profile: Intel's shape (basic constraints and key usage critical, a subject
/// key identifier, the SGX extension on PCK certificates) and nothing else.
struct DevProfile {
    subject: Name,
    issuer: Name,
    kind: Kind,
}

impl BuilderProfile for DevProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let mut extensions = Vec::new();
        let subject = tbs.subject();
        let ski = SubjectKeyIdentifier::try_from(spk)?;
        extensions.push((&ski).to_extension(subject, &extensions)?);
        let (constraints, usage) = match &self.kind {
            Kind::Ca { path_len } => {
                (BasicConstraints { ca: true, path_len_constraint: Some(*path_len) }, KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign))
            }
            Kind::Leaf { .. } => (
                BasicConstraints { ca: false, path_len_constraint: None },
                KeyUsage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation),
            ),
        };
        let mut constraints = (&constraints).to_extension(subject, &extensions)?;
        constraints.critical = true;
        extensions.push(constraints);
        let mut usage = (&usage).to_extension(subject, &extensions)?;
        usage.critical = true;
        extensions.push(usage);
        if let Kind::Leaf { sgx_extension: Some(content) } = &self.kind {
            extensions.push(Extension { extn_id: oid(SGX_EXTENSION_OID), critical: false, extn_value: OctetString::new(content.clone())? });
        }
        Ok(extensions)
    }
}

fn issue(
    subject_key: &SigningKey,
    issuer_key: &SigningKey,
    issuer: Option<&Certificate>,
    subject: Name,
    serial: u32,
    validity: Validity,
    kind: Kind,
) -> Result<Certificate, PkiError> {
    let issuer_name = issuer.map(|cert| cert.tbs_certificate().subject().clone()).unwrap_or_else(|| subject.clone());
    let spki = SubjectPublicKeyInfo::from_key(subject_key.verifying_key()).map_err(build_err)?;
    let profile = DevProfile { subject, issuer: issuer_name, kind };
    CertificateBuilder::new(profile, SerialNumber::from(serial), validity, spki)
        .map_err(build_err)?
        .build::<_, DerSignature>(issuer_key)
        .map_err(build_err)
}

fn name(text: &str) -> Result<Name, PkiError> {
    Name::from_str(text).map_err(build_err)
}

fn utc(unix: u64) -> Result<Time, PkiError> {
    Ok(Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(unix)).map_err(build_err)?))
}

fn validity(from: u64, until: u64) -> Result<Validity, PkiError> {
    Ok(Validity::new(utc(from)?, utc(until)?))
}

fn rfc3339(unix: u64) -> Result<String, PkiError> {
    Ok(DateTime::from_unix_duration(Duration::from_secs(unix)).map_err(build_err)?.to_string())
}

fn pem(cert: &Certificate) -> Result<String, PkiError> {
    cert.to_pem(LineEnding::LF).map_err(build_err)
}

const SGX_EXTENSION_OID: &str = "1.2.840.113741.1.13.1";

fn oid(text: &str) -> x509_cert::der::oid::ObjectIdentifier {
    x509_cert::der::oid::ObjectIdentifier::new(text).expect("the SGX OIDs are well formed")
}

/// DER: one tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n <= 0xff => out.extend_from_slice(&[0x81, n as u8]),
        n => {
            assert!(n <= 0xffff, "SGX extension parts are small");
            out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
        }
    }
    out.extend_from_slice(content);
    out
}

fn der_integer(value: u16) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut content: Vec<u8> = if bytes[0] == 0 { vec![bytes[1]] } else { bytes.to_vec() };
    if content[0] & 0x80 != 0 {
        content.insert(0, 0);
    }
    tlv(0x02, &content)
}

/// One `SEQUENCE { OID, value }` entry of the SGX extension.
fn entry(arc: &str, value: Vec<u8>) -> Vec<u8> {
    let oid = oid(&format!("{SGX_EXTENSION_OID}{arc}"));
    tlv(0x30, &[tlv(0x06, oid.as_bytes()), value].concat())
}

/// The SGX extension of a PCK certificate (Intel's "SGX PCK Certificate and CRL Profile"):
/// PPID, TCB (16 CPU SVN components, PCESVN, CPUSVN), PCE-ID, FMSPC and SGX type.
fn sgx_extension(ppid: &[u8; 16], tcb: &PlatformTcb, fmspc: &[u8; 6]) -> Vec<u8> {
    let mut tcb_entries: Vec<u8> = Vec::new();
    for (i, svn) in tcb.cpu_svn.iter().enumerate() {
        tcb_entries.extend(entry(&format!(".2.{}", i + 1), der_integer(u16::from(*svn))));
    }
    tcb_entries.extend(entry(".2.17", der_integer(tcb.pce_svn)));
    tcb_entries.extend(entry(".2.18", tlv(0x04, &tcb.cpu_svn)));
    let body = [
        entry(".1", tlv(0x04, ppid)),
        entry(".2", tlv(0x30, &tcb_entries)),
        entry(".3", tlv(0x04, &[0, 0])),
        entry(".4", tlv(0x04, fmspc)),
        entry(".5", tlv(0x0a, &[0])),
        configuration(&tcb.flags),
    ]
    .concat();
    tlv(0x30, &body)
}

/// The Configuration entry (`.7`) of a Platform CA's PCK certificate: dynamic platform (`.1`),
/// cached keys (`.2`), SMT enabled (`.3`), as BOOLEANs; nothing when no flag is stated.
fn configuration(flags: &crate::PlatformFlags) -> Vec<u8> {
    let stated: Vec<u8> = [(".7.1", flags.dynamic_platform), (".7.2", flags.cached_keys), (".7.3", flags.smt)]
        .into_iter()
        .filter_map(|(arc, flag)| flag.map(|set| entry(arc, tlv(0x01, &[if set { 0xff } else { 0 }]))))
        .flatten()
        .collect();
    if stated.is_empty() { Vec::new() } else { entry(".7", tlv(0x30, &stated)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_platform_files_secrets_are_wiped_from_its_json_value() {
        let mut value = serde_json::json!({"kind": "tcp-dev-platform", "pck_key": "ab".repeat(32), "seal_root": "cd".repeat(32), "fmspc": "00906ed50000"});
        wipe_secret_fields(&mut value);
        assert_eq!(value["pck_key"], "");
        assert_eq!(value["seal_root"], "");
        assert_eq!(value["fmspc"], "00906ed50000", "what is not secret stays");
    }
}
