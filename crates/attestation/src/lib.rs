//! Remote attestation (whitepaper §4.4, DESIGN §5.4): Intel DCAP quotes, verified on one path
//! for every backend — `dcap-qvl` against the root CAs the chain's genesis accepts — and then
//! held to TCP's policy: allowed enclave measurements and signers, a minimum TCB status, no
//! debug enclaves, and report data that names its purpose — an enclave registration binding the
//! enclave's own keys to the chain and a chain-chosen freshness value (`registration`).
//!
//! Quotes come from a backend (`backend`): `SimulatedBackend` writes real-format quotes
//! (`quote`) signed by a development PKI (`dev_pki`), `TsmBackend` gets hardware quotes from the
//! kernel's configfs-tsm interface. Both are verified by `Verifier` alone; the tests check it
//! on a real Intel SGX quote too.

pub mod backend;
pub mod dev_pki;
pub mod quote;
pub mod registration;

pub use backend::{EnclaveIdentity, Evidence, QuoteBackend, QuoteError, SimulatedBackend, TsmBackend};
pub use dev_pki::{DevPki, DevPlatform, PlatformTcb, Tee};
pub use registration::{REGISTRATION_PURPOSE, Registration, VerifiedRegistration};

use dcap_qvl::QuoteCollateralV3;
use dcap_qvl::quote::Report;
use dcap_qvl::verify::QuoteVerifier;

/// Intel's SGX root CA: the only root a production chain accepts.
pub const INTEL_ROOT_CA_DER: &[u8] = include_bytes!("../tests/vectors/intel_root_ca.der");

/// TCB statuses from best to worst, as TCP ranks them for `min_tcb`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TcbRank {
    UpToDate = 0,
    SwHardeningNeeded = 1,
    ConfigurationNeeded = 2,
    ConfigurationAndSwHardeningNeeded = 3,
    OutOfDate = 4,
    OutOfDateConfigurationNeeded = 5,
    Revoked = 6,
}

impl TcbRank {
    pub fn parse(status: &str) -> Option<TcbRank> {
        Some(match status {
            "UpToDate" => TcbRank::UpToDate,
            "SWHardeningNeeded" => TcbRank::SwHardeningNeeded,
            "ConfigurationNeeded" => TcbRank::ConfigurationNeeded,
            "ConfigurationAndSWHardeningNeeded" => TcbRank::ConfigurationAndSwHardeningNeeded,
            "OutOfDate" => TcbRank::OutOfDate,
            "OutOfDateConfigurationNeeded" => TcbRank::OutOfDateConfigurationNeeded,
            "Revoked" => TcbRank::Revoked,
            _ => return None,
        })
    }

    /// The name Intel's TCB-info uses.
    pub fn intel_name(self) -> &'static str {
        match self {
            TcbRank::UpToDate => "UpToDate",
            TcbRank::SwHardeningNeeded => "SWHardeningNeeded",
            TcbRank::ConfigurationNeeded => "ConfigurationNeeded",
            TcbRank::ConfigurationAndSwHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            TcbRank::OutOfDate => "OutOfDate",
            TcbRank::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            TcbRank::Revoked => "Revoked",
        }
    }
}

/// What a chain accepts.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Allowed MRENCLAVE values (SGX; for TDX, MRTD). Empty: none allowed.
    pub measurements: Vec<[u8; 32]>,
    /// Allowed MRSIGNER values (SGX). Empty: any signer.
    pub signers: Vec<[u8; 32]>,
    /// The worst TCB status accepted.
    pub min_tcb: TcbRank,
    /// Debug enclaves (their memory is readable by the host): development chains only.
    pub allow_debug: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttestationError {
    #[error("a production chain accepts only Intel's root CA")]
    RootRefused,
    #[error("malformed collateral: {0}")]
    MalformedCollateral(String),
    #[error("malformed quote: {0}")]
    MalformedQuote(String),
    #[error("the quote's certificate chain does not end in an accepted root CA")]
    UnknownRoot,
    #[error("the quote does not verify: {0}")]
    Untrusted(String),
    #[error("enclave measurement {0} is not allowed")]
    MeasurementNotAllowed(String),
    #[error("enclave signer {0} is not allowed")]
    SignerNotAllowed(String),
    #[error("the enclave runs in debug mode")]
    DebugEnclave,
    #[error("TCB status {status} is worse than the minimum {minimum:?}")]
    TcbStatus { status: String, minimum: TcbRank },
    #[error("the report data does not name this registration (another purpose, key, chain or freshness value: stale or replayed quote)")]
    ReportDataMismatch,
}

/// What a verified quote says about the enclave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attested {
    pub tee: Tee,
    /// The identity a policy allows: MRENCLAVE for SGX; for TDX, MRTD's first 32 bytes.
    pub measurement: [u8; 32],
    pub signer: Option<[u8; 32]>,
    pub tcb_status: String,
    pub advisory_ids: Vec<String>,
    pub debug: bool,
    pub report_data: [u8; 64],
}

/// Verifies quotes for one chain: its accepted root CAs and its policy.
pub struct Verifier {
    roots: Vec<Vec<u8>>,
    policy: Policy,
}

impl Verifier {
    /// `roots`: the root CA certificates (DER) genesis accepts. `production`: refuse any root
    /// but Intel's, and debug enclaves (a development root signs simulated quotes, which give
    /// no hardware confidentiality).
    pub fn new(roots: Vec<Vec<u8>>, policy: Policy, production: bool) -> Result<Verifier, AttestationError> {
        if production && (roots.iter().any(|root| root != INTEL_ROOT_CA_DER) || policy.allow_debug) {
            return Err(AttestationError::RootRefused);
        }
        Ok(Verifier { roots, policy })
    }

    /// Verify `quote` with its `collateral` (PCS JSON) at `now` (Unix seconds), then apply the
    /// policy and check the report data is `expected_report_data`.
    pub fn verify(
        &self,
        quote: &[u8],
        collateral_json: &[u8],
        now: u64,
        expected_report_data: &[u8; 64],
    ) -> Result<Attested, AttestationError> {
        let attested = self.verify_quote(quote, collateral_json, now)?;
        self.policy.check(&attested)?;
        if &attested.report_data != expected_report_data {
            return Err(AttestationError::ReportDataMismatch);
        }
        Ok(attested)
    }

    /// The quote alone, without the policy: canonical form, a chain ending in an accepted root,
    /// then dcap-qvl (chain, CRLs, collateral signatures, QE report, TCB matching). What an
    /// operator's `tcpchain attest verify` reports before any policy.
    pub fn verify_quote(&self, quote: &[u8], collateral_json: &[u8], now: u64) -> Result<Attested, AttestationError> {
        let collateral: QuoteCollateralV3 =
            serde_json::from_slice(collateral_json).map_err(|e| AttestationError::MalformedCollateral(e.to_string()))?;
        // dcap-qvl would refuse a foreign chain too, but as one of many chain errors; a quote
        // from another PKI (say, a development chain's on a production chain) deserves its own.
        let parsed = dcap_qvl::quote::Quote::parse(quote).map_err(|e| AttestationError::MalformedQuote(format!("{e:#}")))?;
        quote::check_canonical(quote).map_err(AttestationError::MalformedQuote)?;
        let chain = dcap_qvl::intel::extract_cert_chain(&parsed).map_err(|e| AttestationError::MalformedQuote(format!("{e:#}")))?;
        let root = self.roots.iter().find(|root| chain.iter().any(|cert| cert[..] == root[..])).ok_or(AttestationError::UnknownRoot)?;
        // dcap-qvl checks the chain, the signatures and the TCB matching; debug and TCB
        // acceptance are TCP's policy, applied with their own errors.
        let report = QuoteVerifier::new(root.clone())
            .allow_debug(true)
            .verify(quote, &collateral, now)
            .map_err(|e| AttestationError::Untrusted(format!("{e:#}")))?;
        let identity = identity_of_report(&report.report);
        Ok(Attested {
            tee: identity.tee,
            measurement: identity.measurement,
            signer: identity.signer,
            tcb_status: report.status.clone(),
            advisory_ids: report.advisory_ids.clone(),
            debug: identity.debug,
            report_data: identity.report_data,
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl Policy {
    /// The policy's verdict on a verified quote (its report data is the caller's to check).
    pub fn check(&self, attested: &Attested) -> Result<(), AttestationError> {
        if !self.measurements.contains(&attested.measurement) {
            return Err(AttestationError::MeasurementNotAllowed(tcp_types::hex::encode(&attested.measurement)));
        }
        if let Some(signer) = attested.signer
            && !self.signers.is_empty()
            && !self.signers.contains(&signer)
        {
            return Err(AttestationError::SignerNotAllowed(tcp_types::hex::encode(&signer)));
        }
        if attested.debug && !self.allow_debug {
            return Err(AttestationError::DebugEnclave);
        }
        let rank = TcbRank::parse(&attested.tcb_status).unwrap_or(TcbRank::Revoked);
        if rank > self.min_tcb {
            return Err(AttestationError::TcbStatus { status: attested.tcb_status.clone(), minimum: self.min_tcb });
        }
        Ok(())
    }
}

/// What a quote's report body says, before any verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteIdentity {
    pub tee: Tee,
    pub measurement: [u8; 32],
    pub signer: Option<[u8; 32]>,
    pub debug: bool,
    pub report_data: [u8; 64],
}

/// Parse a quote (SGX or TDX) and read the identity a policy would allow, unverified: what an
/// operator puts in genesis (`tcpchain attest identity`).
pub fn identity_of(quote: &[u8]) -> Result<QuoteIdentity, AttestationError> {
    let parsed = dcap_qvl::quote::Quote::parse(quote).map_err(|e| AttestationError::MalformedQuote(format!("{e:#}")))?;
    Ok(identity_of_report(&parsed.report))
}

fn identity_of_report(report: &Report) -> QuoteIdentity {
    let (tee, measurement, signer, debug, report_data) = match report {
        Report::SgxEnclave(r) => (Tee::Sgx, r.mr_enclave, Some(r.mr_signer), r.attributes[0] & 0x02 != 0, r.report_data),
        Report::TD10(r) => (Tee::Tdx, first_32(&r.mr_td), None, r.td_attributes[0] & 0x01 != 0, r.report_data),
        Report::TD15(r) => (Tee::Tdx, first_32(&r.base.mr_td), None, r.base.td_attributes[0] & 0x01 != 0, r.base.report_data),
        Report::TD15Ex(r) => {
            (Tee::Tdx, first_32(&r.base.base.mr_td), None, r.base.base.td_attributes[0] & 0x01 != 0, r.base.base.report_data)
        }
    };
    QuoteIdentity { tee, measurement, signer, debug, report_data }
}

/// MRTD is 48 bytes; TCP identifies a TD by its first 32 (the policy stores 32-byte values).
fn first_32(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes[..32]);
    out
}
