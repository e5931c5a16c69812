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
pub mod collateral;
pub mod dev_pki;
pub mod quote;
pub mod registration;

pub use backend::{EnclaveIdentity, Evidence, QuoteBackend, QuoteError, SimulatedBackend, TsmBackend, simulated_identity};
pub use collateral::{CollateralParts, PckCa};
pub use dev_pki::{DevPki, DevPlatform, PlatformTcb, Tee};
pub use registration::{ChainKeys, REGISTRATION_PURPOSE, Registration, VerifiedRegistration};

use dcap_qvl::quote::{Report, TDReport10};
use dcap_qvl::verify::QuoteVerifier;
use dcap_qvl::{PckCertFlag, QuoteCollateralV3, QuotePolicy};

/// The lowest minimum TCB evaluation data number a production genesis may set: 17, the number
/// of Intel's collateral in the public samples of June 2025 (`tests/vectors`), so a nominal
/// minimum such as 0 does not pass for one.
pub const MIN_PRODUCTION_TCB_EVALUATION_DATA_NUMBER: u32 = 17;

/// Intel's SGX root CA: the only root a production chain accepts.
pub const INTEL_ROOT_CA_DER: &[u8] = include_bytes!("../tests/vectors/intel_root_ca.der");

/// TCB statuses from best to worst, as TCP ranks them for `min_tcb`. The TD-relaunch statuses
/// (TDX 1.5) mean the platform is current but the TD was launched on an older TCB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TcbRank {
    UpToDate = 0,
    SwHardeningNeeded = 1,
    ConfigurationNeeded = 2,
    ConfigurationAndSwHardeningNeeded = 3,
    TdRelaunchAdvised = 4,
    TdRelaunchAdvisedConfigurationNeeded = 5,
    OutOfDate = 6,
    OutOfDateConfigurationNeeded = 7,
    Revoked = 8,
}

const TCB_RANKS: [TcbRank; 9] = [
    TcbRank::UpToDate,
    TcbRank::SwHardeningNeeded,
    TcbRank::ConfigurationNeeded,
    TcbRank::ConfigurationAndSwHardeningNeeded,
    TcbRank::TdRelaunchAdvised,
    TcbRank::TdRelaunchAdvisedConfigurationNeeded,
    TcbRank::OutOfDate,
    TcbRank::OutOfDateConfigurationNeeded,
    TcbRank::Revoked,
];

impl TcbRank {
    pub fn parse(status: &str) -> Option<TcbRank> {
        TCB_RANKS.into_iter().find(|rank| rank.intel_name() == status)
    }

    /// The rank from its number (as the chain stores it).
    pub fn from_rank(rank: u8) -> Option<TcbRank> {
        TCB_RANKS.get(usize::from(rank)).copied()
    }

    /// The name Intel's TCB-info uses.
    pub fn intel_name(self) -> &'static str {
        match self {
            TcbRank::UpToDate => "UpToDate",
            TcbRank::SwHardeningNeeded => "SWHardeningNeeded",
            TcbRank::ConfigurationNeeded => "ConfigurationNeeded",
            TcbRank::ConfigurationAndSwHardeningNeeded => "ConfigurationAndSWHardeningNeeded",
            TcbRank::TdRelaunchAdvised => "TDRelaunchAdvised",
            TcbRank::TdRelaunchAdvisedConfigurationNeeded => "TDRelaunchAdvisedConfigurationNeeded",
            TcbRank::OutOfDate => "OutOfDate",
            TcbRank::OutOfDateConfigurationNeeded => "OutOfDateConfigurationNeeded",
            TcbRank::Revoked => "Revoked",
        }
    }
}

/// What a chain accepts, after the quote itself verified (the shape of Oasis's PCS quote
/// policy and dcap-qvl's `QuotePolicy`). [`Policy::default`] is the strictest: no identity
/// allowed, only `UpToDate`, no debug, SGX and TDX, every PCK flag refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Allowed identities: MRENCLAVE for SGX, the TD identity ([`td_identity`]) for TDX.
    /// Empty: none allowed.
    pub measurements: Vec<[u8; 32]>,
    /// Allowed MRSIGNER values (SGX). Empty: any signer.
    pub signers: Vec<[u8; 32]>,
    /// The worst TCB status accepted.
    pub min_tcb: TcbRank,
    /// Debug enclaves and TDs (their memory is readable by the host) and TD profiling:
    /// development chains only.
    pub allow_debug: bool,
    /// The TEE types accepted.
    pub tees: Vec<Tee>,
    /// The oldest TCB evaluation data number accepted: Intel raises it at each TCB recovery,
    /// so a quote judged against collateral from before a recovery is refused even while that
    /// collateral is unexpired. A production chain must set it.
    pub min_tcb_evaluation_data_number: Option<u32>,
    /// Security advisories (INTEL-SA-…) a platform must not be affected by, whatever its status.
    pub rejected_advisories: Vec<String>,
    /// PCK certificate flags (multi-package platforms): accept a platform with SMT
    /// (hyper-threading) on, one whose package membership can change (dynamic platform), or one
    /// whose platform keys are cached for re-registration. Processor-CA certificates carry none.
    pub allow_smt: bool,
    pub allow_dynamic_platform: bool,
    pub allow_cached_keys: bool,
    /// The oldest TCB info and QE identity accepted, in seconds since their issue date (they
    /// are refused anyway once past their own `nextUpdate`). None: until they expire.
    pub max_collateral_age_secs: Option<u64>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            measurements: Vec::new(),
            signers: Vec::new(),
            min_tcb: TcbRank::UpToDate,
            allow_debug: false,
            tees: vec![Tee::Sgx, Tee::Tdx],
            min_tcb_evaluation_data_number: None,
            rejected_advisories: Vec::new(),
            allow_smt: false,
            allow_dynamic_platform: false,
            allow_cached_keys: false,
            max_collateral_age_secs: None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AttestationError {
    #[error("a production chain accepts only Intel's root CA")]
    RootRefused,
    #[error(
        "a production chain allows no debug enclaves and must set a minimum TCB evaluation data number of at least {MIN_PRODUCTION_TCB_EVALUATION_DATA_NUMBER}"
    )]
    ProductionPolicy,
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
    #[error("TEE type {0} is not accepted by this chain")]
    TeeNotAllowed(&'static str),
    #[error("TCB evaluation data number {number} is older than the minimum {minimum}")]
    TcbEvaluationTooOld { number: u32, minimum: u32 },
    #[error("the platform is affected by advisory {0}, which this chain refuses")]
    AdvisoryRefused(String),
    #[error("the platform's PCK certificate says {0}, which this chain refuses")]
    PlatformFlagRefused(&'static str),
    #[error("the collateral was issued {age_secs} s before verification (at most {max_secs} s)")]
    CollateralTooOld { age_secs: u64, max_secs: u64 },
    #[error("the report data does not name this registration (another purpose, key, chain or freshness value: stale or replayed quote)")]
    ReportDataMismatch,
}

/// The PCK certificate's platform flags (None: the certificate does not carry it, as
/// Processor-CA certificates of single-package platforms do not).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlatformFlags {
    pub smt: Option<bool>,
    pub dynamic_platform: Option<bool>,
    pub cached_keys: Option<bool>,
}

/// What a verified quote says about the enclave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attested {
    pub tee: Tee,
    /// The identity a policy allows: MRENCLAVE for SGX; for TDX, the TD identity.
    pub measurement: [u8; 32],
    pub signer: Option<[u8; 32]>,
    pub tcb_status: String,
    pub advisory_ids: Vec<String>,
    pub tcb_evaluation_data_number: u32,
    pub platform_flags: PlatformFlags,
    /// The oldest issue date of the monthly parts: TCB info, QE identity, PCK CRL (Unix seconds).
    pub collateral_issued_at: u64,
    /// The time the quote was verified at.
    pub verified_at: u64,
    pub debug: bool,
    pub report_data: [u8; 64],
}

/// Verifies quotes for one chain: its accepted root CAs and its policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    roots: Vec<Vec<u8>>,
    policy: Policy,
}

impl Verifier {
    /// `roots`: the root CA certificates (DER) genesis accepts. `production`: refuse any root
    /// but Intel's (a development root signs simulated quotes, which give no hardware
    /// confidentiality), debug enclaves, and a policy without a minimum TCB evaluation data
    /// number.
    pub fn new(roots: Vec<Vec<u8>>, policy: Policy, production: bool) -> Result<Verifier, AttestationError> {
        if production && roots.iter().any(|root| root != INTEL_ROOT_CA_DER) {
            return Err(AttestationError::RootRefused);
        }
        if production
            && (policy.allow_debug
                || policy.min_tcb_evaluation_data_number.is_none_or(|minimum| minimum < MIN_PRODUCTION_TCB_EVALUATION_DATA_NUMBER))
        {
            return Err(AttestationError::ProductionPolicy);
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
        // The cheap refusal first: a quote made for other report data (copied from another
        // operator's registration, say) costs a parse, not a DCAP verification. The verified
        // report data is compared again below.
        let parsed = dcap_qvl::quote::Quote::parse(quote).map_err(|e| AttestationError::MalformedQuote(format!("{e:#}")))?;
        if &identity_of_report(&parsed.report).report_data != expected_report_data {
            return Err(AttestationError::ReportDataMismatch);
        }
        let attested = self.verify_quote(quote, collateral_json, now)?;
        self.policy.check(&attested)?;
        if &attested.report_data != expected_report_data {
            return Err(AttestationError::ReportDataMismatch);
        }
        Ok(attested)
    }

    /// The quote alone, without the policy but for debug: canonical form, a chain ending in an
    /// accepted root, then dcap-qvl (chain, CRLs, collateral signatures, QE report, TCB
    /// matching, and its TD attribute checks: no debug or profiling unless the policy allows
    /// debug, no migratable TD, SEPT_VE_DISABLE set). What `tcpchain attest verify` reports
    /// before any policy.
    pub fn verify_quote(&self, quote: &[u8], collateral_json: &[u8], now: u64) -> Result<Attested, AttestationError> {
        let collateral: QuoteCollateralV3 =
            serde_json::from_slice(collateral_json).map_err(|e| AttestationError::MalformedCollateral(e.to_string()))?;
        // dcap-qvl verifies a PCK chain carried in the collateral instead of the quote's own:
        // the chain checked against the roots below would then not be the one verified.
        if collateral.pck_certificate_chain.is_some() {
            return Err(AttestationError::MalformedCollateral(
                "it carries a PCK certificate chain; the quote's own chain is the one verified".into(),
            ));
        }
        let collateral_issued_at = collateral_issue_date(&collateral)?;
        let parsed = dcap_qvl::quote::Quote::parse(quote).map_err(|e| AttestationError::MalformedQuote(format!("{e:#}")))?;
        quote::check_canonical(quote).map_err(AttestationError::MalformedQuote)?;
        // dcap-qvl would refuse a foreign chain too, but as one of many chain errors; a quote
        // from another PKI (say, a development chain's on a production chain) deserves its own.
        let chain = dcap_qvl::intel::extract_cert_chain(&parsed).map_err(|e| AttestationError::MalformedQuote(format!("{e:#}")))?;
        let root = self.roots.iter().find(|root| chain.iter().any(|cert| cert[..] == root[..])).ok_or(AttestationError::UnknownRoot)?;
        if identity_of_report(&parsed.report).debug && !self.policy.allow_debug {
            return Err(AttestationError::DebugEnclave);
        }
        // Fields of a TD 1.5-ex report that neither dcap-qvl nor the TD identity covers: a
        // report the L1 VMM asked for on behalf of a nested VM, or devices (TDX Connect) bound
        // to the TD, which can reach its private memory. TCP's TDs have neither.
        if let Report::TD15Ex(r) = &parsed.report {
            if r.vmid != 0 {
                return Err(AttestationError::Untrusted(format!("the report is for nested VM {}, not the TD", r.vmid)));
            }
            if r.dev_info != [0; 48] {
                return Err(AttestationError::Untrusted("devices are bound to the TD (TDX Connect)".into()));
            }
        }
        let claims = QuoteVerifier::new(root.clone())
            .allow_debug(self.policy.allow_debug)
            .verify_with_policy(quote, collateral, now, &QuotePolicy::claims_only(now))
            .map_err(|e| AttestationError::Untrusted(format!("{e:#}")))?;
        let identity = identity_of_report(&claims.report);
        let flag = |flag: PckCertFlag| match flag {
            PckCertFlag::True => Some(true),
            PckCertFlag::False => Some(false),
            PckCertFlag::Undefined => None,
        };
        let pck = &claims.platform.pck;
        Ok(Attested {
            tee: identity.tee,
            measurement: identity.measurement,
            signer: identity.signer,
            tcb_status: claims.tcb.status.to_string(),
            advisory_ids: claims.tcb.advisory_ids.clone(),
            tcb_evaluation_data_number: claims.tcb.eval_data_number,
            platform_flags: PlatformFlags {
                smt: flag(pck.smt_enabled),
                dynamic_platform: flag(pck.dynamic_platform),
                cached_keys: flag(pck.cached_keys),
            },
            collateral_issued_at,
            verified_at: now,
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
        if !self.tees.contains(&attested.tee) {
            return Err(AttestationError::TeeNotAllowed(attested.tee.name()));
        }
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
        if let Some(minimum) = self.min_tcb_evaluation_data_number
            && attested.tcb_evaluation_data_number < minimum
        {
            return Err(AttestationError::TcbEvaluationTooOld { number: attested.tcb_evaluation_data_number, minimum });
        }
        if let Some(advisory) =
            attested.advisory_ids.iter().find(|id| self.rejected_advisories.iter().any(|refused| refused.eq_ignore_ascii_case(id)))
        {
            return Err(AttestationError::AdvisoryRefused(advisory.clone()));
        }
        let flags = attested.platform_flags;
        for (set, allowed, what) in [
            (flags.smt, self.allow_smt, "SMT (hyper-threading) enabled"),
            (flags.dynamic_platform, self.allow_dynamic_platform, "a dynamic platform"),
            (flags.cached_keys, self.allow_cached_keys, "cached platform keys"),
        ] {
            if set == Some(true) && !allowed {
                return Err(AttestationError::PlatformFlagRefused(what));
            }
        }
        if let Some(max_secs) = self.max_collateral_age_secs {
            let age_secs = attested.verified_at.saturating_sub(attested.collateral_issued_at);
            if age_secs > max_secs {
                return Err(AttestationError::CollateralTooOld { age_secs, max_secs });
            }
        }
        Ok(())
    }
}

/// The oldest of the TCB info's and the QE identity's `issueDate` and the PCK CRL's
/// `thisUpdate`: the parts Intel reissues monthly (an old PCK CRL would hide a recent
/// revocation until it expires). The root CA's CRL is reissued yearly and is not counted.
/// Their signatures are dcap-qvl's to check, over these same bytes; a date that does not parse
/// is malformed collateral either way.
fn collateral_issue_date(collateral: &QuoteCollateralV3) -> Result<u64, AttestationError> {
    Ok(CollateralParts::of(collateral)?.issued_at())
}

/// `YYYY-MM-DDThh:mm:ssZ` (the form Intel's PCS writes) as Unix seconds.
pub(crate) fn parse_utc_timestamp(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() != 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b'T'
        || bytes[13] != b':'
        || bytes[16] != b':'
        || bytes[19] != b'Z'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = &text[range];
        digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm), 1970-01-01 being day 0.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

/// What a quote's report body says, before any verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteIdentity {
    pub tee: Tee,
    /// MRENCLAVE for SGX; the TD identity for TDX.
    pub measurement: [u8; 32],
    pub signer: Option<[u8; 32]>,
    pub debug: bool,
    pub report_data: [u8; 64],
    /// The registers the identity is made of, named, in hex: for an operator to see what
    /// changed when an identity does.
    pub components: Vec<(&'static str, String)>,
}

/// Parse a quote (SGX or TDX) and read the identity a policy would allow, unverified: what an
/// operator puts in genesis (`tcpchain attest identity`).
pub fn identity_of(quote: &[u8]) -> Result<QuoteIdentity, AttestationError> {
    let parsed = dcap_qvl::quote::Quote::parse(quote).map_err(|e| AttestationError::MalformedQuote(format!("{e:#}")))?;
    Ok(identity_of_report(&parsed.report))
}

/// What identifies a TD (DESIGN §5.4): SHA-256 over MRTD (the TD's firmware), RTMR0–3 (the
/// firmware's configuration, the boot loader and kernel, the kernel command line and initrd,
/// and what the TD's software extends at run time), the three host-chosen configuration
/// registers (MRCONFIGID, MROWNER, MROWNERCONFIG), the TD attributes and XFAM. Everything the
/// TD runs or is configured with changes it. The TDX module does not: dcap-qvl checks its signer
/// (MRSIGNERSEAM, Intel), attributes and SVN against Intel's TCB info — not MRSEAM, so any
/// Intel-signed module at an accepted SVN passes, Intel's model. Nor do TDX 1.5's service-TD
/// fields (a TD with a service TD bound is refused by dcap-qvl), relaunch fields, or the
/// 1.5-ex VM index and device info (refused unless zero by `Verifier::verify_quote`).
pub fn td_identity(report: &TDReport10) -> [u8; 32] {
    tcp_crypto::sha256(&[
        TD_IDENTITY_PURPOSE,
        &[0],
        &report.mr_td,
        &report.rt_mr0,
        &report.rt_mr1,
        &report.rt_mr2,
        &report.rt_mr3,
        &report.mr_config_id,
        &report.mr_owner,
        &report.mr_owner_config,
        &report.td_attributes,
        &report.xfam,
    ])
    .0
}

/// Names what [`td_identity`] hashes.
pub const TD_IDENTITY_PURPOSE: &[u8] = b"tcp/attest/td-identity";

/// Which platform a quote says it comes from — its TEE, and the FMSPC and issuing CA of its PCK
/// certificate — so the chain can find the collateral to verify it with. Read from the quote
/// and not verified here: verification with that collateral decides.
pub fn quote_platform(quote: &[u8]) -> Result<(Tee, [u8; 6], PckCa), AttestationError> {
    let parsed = dcap_qvl::quote::Quote::parse(quote).map_err(|e| AttestationError::MalformedQuote(format!("{e:#}")))?;
    let fmspc = dcap_qvl::intel::quote_fmspc(&parsed).map_err(|e| AttestationError::MalformedQuote(format!("{e:#}")))?;
    let ca = match dcap_qvl::intel::quote_ca(&parsed).map_err(|e| AttestationError::MalformedQuote(format!("{e:#}")))? {
        dcap_qvl::config::PckCa::Platform => PckCa::Platform,
        _ => PckCa::Processor,
    };
    Ok((identity_of_report(&parsed.report).tee, fmspc, ca))
}

fn identity_of_report(report: &Report) -> QuoteIdentity {
    let td = match report {
        Report::SgxEnclave(r) => {
            return QuoteIdentity {
                tee: Tee::Sgx,
                measurement: r.mr_enclave,
                signer: Some(r.mr_signer),
                debug: r.attributes[0] & 0x02 != 0,
                report_data: r.report_data,
                components: vec![("mrenclave", hex(&r.mr_enclave)), ("mrsigner", hex(&r.mr_signer))],
            };
        }
        Report::TD10(r) => r,
        Report::TD15(r) => &r.base,
        Report::TD15Ex(r) => &r.base.base,
    };
    QuoteIdentity {
        tee: Tee::Tdx,
        measurement: td_identity(td),
        signer: None,
        debug: td.td_attributes[0] & 0x01 != 0,
        report_data: td.report_data,
        components: vec![
            ("mrtd", hex(&td.mr_td)),
            ("rtmr0", hex(&td.rt_mr0)),
            ("rtmr1", hex(&td.rt_mr1)),
            ("rtmr2", hex(&td.rt_mr2)),
            ("rtmr3", hex(&td.rt_mr3)),
            ("mrconfigid", hex(&td.mr_config_id)),
            ("mrowner", hex(&td.mr_owner)),
            ("mrownerconfig", hex(&td.mr_owner_config)),
            ("td_attributes", hex(&td.td_attributes)),
            ("xfam", hex(&td.xfam)),
        ],
    }
}

fn hex(bytes: &[u8]) -> String {
    tcp_types::hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intel_timestamps_parse_to_unix_seconds_and_others_do_not() {
        assert_eq!(parse_utc_timestamp("1970-01-01T00:00:00Z"), Some(0));
        // `date -u -d 2026-02-18T10:58:51Z +%s`
        assert_eq!(parse_utc_timestamp("2026-02-18T10:58:51Z"), Some(1_771_412_331));
        assert_eq!(parse_utc_timestamp("2024-02-29T23:59:59Z"), Some(1_709_251_199));
        for bad in ["2026-02-18 10:58:51Z", "2026-13-01T00:00:00Z", "2026-02-18T10:58:51", "+026-02-18T10:58:51Z", "2026-02-18T10:58:51.5Z"]
        {
            assert_eq!(parse_utc_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_tcb_rank_round_trips_through_its_intel_name() {
        for rank in TCB_RANKS {
            assert_eq!(TcbRank::parse(rank.intel_name()), Some(rank));
        }
        assert_eq!(TcbRank::parse("uptodate"), None);
    }
}
