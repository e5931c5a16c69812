//! Simulated quotes (development PKI, real DCAP format) on the one verification path: they
//! verify, and every way of getting one wrong fails with its own error.

use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tcp_attestation::{
    AttestationError, DevPki, DevPlatform, EnclaveIdentity, PlatformFlags, PlatformTcb, Policy, QuoteBackend, SimulatedBackend, TcbRank,
    Tee, Verifier, simulated_identity,
};

mod common;
use common::report_data;

/// 2026-11-01: inside every validity window below.
const START: u64 = 1_793_491_200;
const NOW: u64 = START + 86_400;
const FMSPC: [u8; 6] = [0x00, 0x90, 0x6e, 0xd5, 0x00, 0x00];

struct Setup {
    pki: DevPki,
    platform_json: String,
}

fn make(seed: u64) -> Setup {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let pki = DevPki::generate(&mut rng, START, Duration::from_secs(365 * 86_400)).unwrap();
    let platform = pki.issue_platform(&mut rng, PlatformTcb::default(), FMSPC).unwrap();
    Setup { platform_json: platform.to_json().to_string(), pki }
}

fn backend(setup: &Setup, tee: Tee) -> SimulatedBackend {
    SimulatedBackend::new(DevPlatform::from_json(&setup.platform_json).unwrap(), tee, &mut ChaCha20Rng::seed_from_u64(7))
}

const MEASUREMENT: [u8; 32] = [0x5a; 32];
const EPHEMERAL_KEY: [u8; 32] = [0x11; 32];
const CHALLENGE: [u8; 32] = [0x22; 32];

/// Allows the enclave on SGX and as the simulated TD, debug or not (debug is refused anyway
/// unless the policy allows it).
fn policy() -> Policy {
    let measurements = vec![MEASUREMENT, simulated_identity(Tee::Tdx, &enclave(false)), simulated_identity(Tee::Tdx, &enclave(true))];
    Policy { measurements, ..Policy::default() }
}

fn verifier(setup: &Setup, policy: Policy) -> Verifier {
    Verifier::new(vec![setup.pki.root_ca_der()], policy, false).unwrap()
}

fn enclave(debug: bool) -> EnclaveIdentity {
    EnclaveIdentity { measurement: MEASUREMENT, debug }
}

#[test]
fn simulated_sgx_and_tdx_quotes_verify_and_report_the_enclave() {
    let setup = make(1);
    let expected = report_data(&EPHEMERAL_KEY, &CHALLENGE);
    for tee in [Tee::Sgx, Tee::Tdx] {
        let evidence = backend(&setup, tee).quote(&enclave(false), &expected).unwrap();
        // dcap-qvl parses what we wrote as the quote version the TEE uses.
        let parsed = dcap_qvl::quote::Quote::parse(&evidence.quote).unwrap();
        assert_eq!(parsed.header.version, if tee == Tee::Sgx { 3 } else { 4 });
        let attested = verifier(&setup, policy()).verify(&evidence.quote, &evidence.collateral, NOW, &expected).unwrap();
        assert_eq!(attested.measurement, simulated_identity(tee, &enclave(false)));
        assert_eq!(attested.tcb_status, "UpToDate");
        assert!(!attested.debug);
        assert_eq!(attested.report_data, expected);
        let signer = (tee == Tee::Sgx).then(tcp_attestation::dev_pki::dev_enclave_mrsigner);
        assert_eq!(attested.signer, signer, "{tee:?}");
    }
}

#[test]
fn each_wrong_quote_fails_with_its_own_error() {
    let setup = make(2);
    let expected = report_data(&EPHEMERAL_KEY, &CHALLENGE);
    for tee in [Tee::Sgx, Tee::Tdx] {
        let backend = backend(&setup, tee);
        let good = backend.quote(&enclave(false), &expected).unwrap();

        // A root the chain does not end in.
        let other = make(3);
        assert_eq!(verifier(&other, policy()).verify(&good.quote, &good.collateral, NOW, &expected), Err(AttestationError::UnknownRoot));

        // A measurement the chain does not allow.
        let policy_other = Policy { measurements: vec![[0x77; 32]], ..policy() };
        assert!(matches!(
            verifier(&setup, policy_other).verify(&good.quote, &good.collateral, NOW, &expected),
            Err(AttestationError::MeasurementNotAllowed(_))
        ));

        // A debug enclave, on a chain that does not allow them; accepted where allowed.
        let debug = backend.quote(&enclave(true), &expected).unwrap();
        assert_eq!(verifier(&setup, policy()).verify(&debug.quote, &debug.collateral, NOW, &expected), Err(AttestationError::DebugEnclave));
        let lenient = Policy { allow_debug: true, ..policy() };
        assert!(verifier(&setup, lenient).verify(&debug.quote, &debug.collateral, NOW, &expected).unwrap().debug);

        // A stale challenge: the quote answers an earlier one.
        let fresh = report_data(&EPHEMERAL_KEY, &[0x23; 32]);
        assert_eq!(
            verifier(&setup, policy()).verify(&good.quote, &good.collateral, NOW, &fresh),
            Err(AttestationError::ReportDataMismatch)
        );
        // Another enclave key under the same challenge.
        let other_key = report_data(&[0x12; 32], &CHALLENGE);
        assert_eq!(
            verifier(&setup, policy()).verify(&good.quote, &good.collateral, NOW, &other_key),
            Err(AttestationError::ReportDataMismatch)
        );

        // An out-of-date TCB: refused under a minimum of UpToDate, accepted under OutOfDate.
        let platform = DevPlatform::from_json(&setup.platform_json).unwrap();
        let out_of_date =
            setup.pki.collateral(tee, &platform.tcb, &platform.fmspc, TcbRank::OutOfDate, START, START + 30 * 86_400).unwrap();
        let refused = verifier(&setup, policy()).verify(&good.quote, out_of_date.as_bytes(), NOW, &expected);
        assert_eq!(refused, Err(AttestationError::TcbStatus { status: "OutOfDate".into(), minimum: TcbRank::UpToDate }));
        let tolerant = Policy { min_tcb: TcbRank::OutOfDate, ..policy() };
        let attested = verifier(&setup, tolerant).verify(&good.quote, out_of_date.as_bytes(), NOW, &expected).unwrap();
        assert_eq!(attested.advisory_ids, vec!["TCP-DEV-SA-0001".to_string()]);

        // Expired collateral and certificates outside their validity.
        let expired = verifier(&setup, policy()).verify(&good.quote, out_of_date.as_bytes(), START + 31 * 86_400, &expected);
        assert!(matches!(expired, Err(AttestationError::Untrusted(ref e)) if e.to_lowercase().contains("expired")), "{expired:?}");
        assert!(matches!(
            verifier(&setup, policy()).verify(&good.quote, &good.collateral, START + 400 * 86_400, &expected),
            Err(AttestationError::Untrusted(_))
        ));

        // Collateral that does not parse, and a quote that does not.
        assert!(matches!(
            verifier(&setup, policy()).verify(&good.quote, b"{}", NOW, &expected),
            Err(AttestationError::MalformedCollateral(_))
        ));
        assert!(matches!(
            verifier(&setup, policy()).verify(&good.quote[..100], &good.collateral, NOW, &expected),
            Err(AttestationError::MalformedQuote(_))
        ));

        // TCB-info edited after signing.
        let mut collateral: serde_json::Value = serde_json::from_slice(&good.collateral).unwrap();
        let tcb_info = collateral["tcb_info"].as_str().unwrap().replace("\"tcbEvaluationDataNumber\":1", "\"tcbEvaluationDataNumber\":2");
        collateral["tcb_info"] = tcb_info.into();
        let edited = serde_json::to_vec(&collateral).unwrap();
        let result = verifier(&setup, policy()).verify(&good.quote, &edited, NOW, &expected);
        assert!(matches!(result, Err(AttestationError::Untrusted(ref e)) if e.contains("tcb_info")), "{result:?}");
    }
}

/// Flip one bit of every byte of the binary part of the quote (header, report, signatures,
/// keys, QE report and authentication data, lengths) and of every certificate's DER in its
/// PCK chain: every such quote is refused. (The PEM armour around the certificates is
/// formatting; what it carries is covered by flipping the DER.)
#[test]
fn flipping_any_byte_of_a_quote_fails_verification() {
    let setup = make(4);
    let expected = report_data(&EPHEMERAL_KEY, &CHALLENGE);
    for tee in [Tee::Sgx, Tee::Tdx] {
        let good = backend(&setup, tee).quote(&enclave(false), &expected).unwrap();
        let verifier = verifier(&setup, policy());
        assert!(verifier.verify(&good.quote, &good.collateral, NOW, &expected).is_ok());
        let pem_start = good.quote.windows(11).position(|w| w == b"-----BEGIN ").unwrap();
        for i in 0..pem_start {
            let mut quote = good.quote.clone();
            quote[i] ^= 0x01;
            assert!(verifier.verify(&quote, &good.collateral, NOW, &expected).is_err(), "{tee:?}: flipping byte {i} went unnoticed");
        }
        let pem = std::str::from_utf8(&good.quote[pem_start..]).unwrap().to_string();
        let certificates = pem_blocks(&pem);
        assert_eq!(certificates.len(), 3, "leaf, PCK CA, root");
        for (c, der) in certificates.iter().enumerate() {
            for i in 0..der.len() {
                let mut flipped = certificates.clone();
                flipped[c][i] ^= 0x01;
                let chain: String = flipped.iter().map(|d| to_pem(d)).collect();
                let quote = replace_chain(&good.quote, pem_start, &chain, tee);
                assert!(
                    verifier.verify(&quote, &good.collateral, NOW, &expected).is_err(),
                    "{tee:?}: flipping byte {i} of certificate {c} went unnoticed"
                );
            }
        }
    }
}

/// A TD is identified by all its registers ([`tcp_attestation::td_identity`]), so a policy
/// that names the enclave binary's hash alone — what MRTD's first 32 bytes used to be compared
/// with — does not admit a TD; the simulated TD's identity names the enclave it runs.
#[test]
fn a_simulated_td_is_allowed_by_its_td_identity_not_by_the_binary_hash() {
    let setup = make(8);
    let expected = report_data(&EPHEMERAL_KEY, &CHALLENGE);
    let good = backend(&setup, Tee::Tdx).quote(&enclave(false), &expected).unwrap();
    let binary_only = Policy { measurements: vec![MEASUREMENT], ..Policy::default() };
    assert!(matches!(
        verifier(&setup, binary_only).verify(&good.quote, &good.collateral, NOW, &expected),
        Err(AttestationError::MeasurementNotAllowed(_))
    ));
    let identity = simulated_identity(Tee::Tdx, &enclave(false));
    assert_ne!(identity, MEASUREMENT);
    assert_ne!(identity, simulated_identity(Tee::Tdx, &EnclaveIdentity { measurement: [0x5b; 32], debug: false }), "another enclave");
    assert_ne!(identity, simulated_identity(Tee::Tdx, &enclave(true)), "the debug attribute");
    assert_eq!(simulated_identity(Tee::Sgx, &enclave(false)), MEASUREMENT);
    let only_td = Policy { measurements: vec![identity], ..Policy::default() };
    assert_eq!(verifier(&setup, only_td).verify(&good.quote, &good.collateral, NOW, &expected).unwrap().measurement, identity);
}

/// A Platform-CA PCK certificate states the platform's configuration; the policy decides.
#[test]
fn the_pck_certificates_platform_flags_are_policy() {
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let pki = DevPki::generate(&mut rng, START, Duration::from_secs(365 * 86_400)).unwrap();
    let expected = report_data(&EPHEMERAL_KEY, &CHALLENGE);
    for (flags, refused) in [
        (PlatformFlags { smt: Some(true), dynamic_platform: Some(false), cached_keys: Some(false) }, Some("SMT (hyper-threading) enabled")),
        (PlatformFlags { smt: Some(false), dynamic_platform: Some(true), cached_keys: None }, Some("a dynamic platform")),
        (PlatformFlags { smt: None, dynamic_platform: None, cached_keys: Some(true) }, Some("cached platform keys")),
        (PlatformFlags { smt: Some(false), dynamic_platform: Some(false), cached_keys: Some(false) }, None),
    ] {
        let platform = pki.issue_platform(&mut rng, PlatformTcb { flags, ..PlatformTcb::default() }, FMSPC).unwrap();
        let setup = Setup {
            platform_json: platform.to_json().to_string(),
            pki: DevPki::generate(&mut rng, START, Duration::from_secs(86_400)).unwrap(),
        };
        let evidence = backend(&setup, Tee::Sgx).quote(&enclave(false), &expected).unwrap();
        let verifier = |policy: Policy| Verifier::new(vec![pki.root_ca_der()], policy, false).unwrap();
        let attested = verifier(Policy { allow_smt: true, allow_dynamic_platform: true, allow_cached_keys: true, ..policy() })
            .verify(&evidence.quote, &evidence.collateral, NOW, &expected)
            .unwrap();
        assert_eq!(attested.platform_flags, flags, "the flags the certificate states are the flags read");
        let strict = verifier(policy()).verify(&evidence.quote, &evidence.collateral, NOW, &expected);
        match refused {
            Some(what) => assert_eq!(strict, Err(AttestationError::PlatformFlagRefused(what)), "{flags:?}"),
            None => assert!(strict.is_ok(), "{flags:?}: {strict:?}"),
        }
    }
}

/// A TD 1.5-ex report's VM index and device info are covered by neither dcap-qvl nor the TD
/// identity: a report for a nested VM, or a TD with devices bound, is refused before anything
/// else is checked. (The quote is a simulated v4 quote rewritten as v5 with a 1.5-ex body, so
/// its signature no longer verifies: with both fields zero it fails there instead.)
#[test]
fn a_td15_ex_report_for_a_nested_vm_or_with_devices_is_refused() {
    let setup = make(10);
    let expected = report_data(&EPHEMERAL_KEY, &CHALLENGE);
    let good = backend(&setup, Tee::Tdx).quote(&enclave(false), &expected).unwrap();
    let as_td15_ex = |vmid: u8, dev_info: u8| {
        let mut quote = good.quote[..48].to_vec();
        quote[0] = 5;
        quote.extend_from_slice(&4u16.to_le_bytes());
        quote.extend_from_slice(&885u32.to_le_bytes());
        let mut body = good.quote[48..48 + 584].to_vec();
        body.resize(885, 0);
        body[648] = vmid;
        body[681] = dev_info;
        quote.extend_from_slice(&body);
        quote.extend_from_slice(&good.quote[48 + 584..]);
        quote
    };
    let verify = |quote: Vec<u8>| verifier(&setup, policy()).verify_quote(&quote, &good.collateral, NOW);
    let nested = verify(as_td15_ex(1, 0));
    assert!(matches!(nested, Err(AttestationError::Untrusted(ref e)) if e.contains("nested VM 1")), "{nested:?}");
    let devices = verify(as_td15_ex(0, 1));
    assert!(matches!(devices, Err(AttestationError::Untrusted(ref e)) if e.contains("devices are bound")), "{devices:?}");
    let plain = verify(as_td15_ex(0, 0));
    assert!(matches!(plain, Err(AttestationError::Untrusted(ref e)) if !e.contains("nested") && !e.contains("devices")), "{plain:?}");
}

#[test]
fn a_production_chain_refuses_the_development_root() {
    let setup = make(5);
    assert!(matches!(Verifier::new(vec![setup.pki.root_ca_der()], policy(), true), Err(AttestationError::RootRefused)));
    let production =
        Policy { min_tcb_evaluation_data_number: Some(tcp_attestation::MIN_PRODUCTION_TCB_EVALUATION_DATA_NUMBER), ..policy() };
    assert!(matches!(Verifier::new(vec![setup.pki.root_ca_der()], production.clone(), true), Err(AttestationError::RootRefused)));
    assert!(Verifier::new(vec![tcp_attestation::INTEL_ROOT_CA_DER.to_vec()], production, true).is_ok());
}

#[test]
fn the_platform_file_round_trips_and_rejects_garbage() {
    let setup = make(6);
    let platform = DevPlatform::from_json(&setup.platform_json).unwrap();
    assert_eq!(platform.to_json().as_str(), setup.platform_json);
    assert_eq!(platform.root_ca_der, setup.pki.root_ca_der());
    assert!(DevPlatform::from_json("{}").is_err());
    assert!(DevPlatform::from_json("not json").is_err());
    let truncated = setup.platform_json.replace("\"fmspc\": \"00906ed50000\"", "\"fmspc\": \"0090\"");
    assert!(DevPlatform::from_json(&truncated).is_err());
}

// --- helpers: take the PEM chain apart and put it back, fixing the length fields ---

fn pem_blocks(pem: &str) -> Vec<Vec<u8>> {
    pem.split_inclusive("-----END CERTIFICATE-----\n").map(|block| x509_cert::der::pem::decode_vec(block.as_bytes()).unwrap().1).collect()
}

fn to_pem(der: &[u8]) -> String {
    x509_cert::der::pem::encode_string("CERTIFICATE", x509_cert::der::pem::LineEnding::LF, der).unwrap()
}

/// The quote with its PCK chain replaced; the enclosing length fields are updated so that
/// only the certificate bytes differ.
fn replace_chain(quote: &[u8], pem_start: usize, chain: &str, tee: Tee) -> Vec<u8> {
    let old_len = quote.len() - pem_start;
    let delta = chain.len() as i64 - old_len as i64;
    let mut out = quote[..pem_start].to_vec();
    out.extend_from_slice(chain.as_bytes());
    let adjust = |out: &mut Vec<u8>, at: usize| {
        let v = u32::from_le_bytes(out[at..at + 4].try_into().unwrap()) as i64 + delta;
        out[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
    };
    let body_len = if tee == Tee::Sgx { 384 } else { 584 };
    adjust(&mut out, 48 + body_len); // the signature data's length
    adjust(&mut out, pem_start - 4); // the PCK chain's length
    if tee == Tee::Tdx {
        adjust(&mut out, 48 + body_len + 4 + 128 + 2); // the QE certification data's length
    }
    out
}
