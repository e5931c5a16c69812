//! A real SGX quote from Intel hardware, with its PCS collateral, through TCP's verifier: it
//! verifies under Intel's root with a policy that allows it, and every kind of tampering or
//! policy breach fails with its own error.

use tcp_attestation::quote::quote_id;
use tcp_attestation::{AttestationError, INTEL_ROOT_CA_DER, PlatformFlags, Policy, TcbRank, Tee, Verifier};

const QUOTE: &[u8] = include_bytes!("vectors/intel_sgx_quote.bin");
const COLLATERAL: &[u8] = include_bytes!("vectors/intel_sgx_quote_collateral.json");

/// A time at which the collateral is valid: just after the later of its TCB-info and
/// QE-identity issue dates.
fn now() -> u64 {
    let collateral: serde_json::Value = serde_json::from_slice(COLLATERAL).unwrap();
    ["tcb_info", "qe_identity"]
        .iter()
        .map(|field| {
            let inner: serde_json::Value = serde_json::from_str(collateral[field].as_str().unwrap()).unwrap();
            rfc3339_seconds(inner["issueDate"].as_str().unwrap())
        })
        .max()
        .unwrap()
        + 60
}

/// "YYYY-MM-DDTHH:MM:SSZ" to Unix seconds (civil-from-days, UTC).
fn rfc3339_seconds(text: &str) -> u64 {
    let n = |a: usize, b: usize| text[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    (days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19)) as u64
}

/// What the sample quote carries (read once with a permissive policy).
fn sample() -> tcp_attestation::Attested {
    let quote = dcap_qvl::quote::Quote::parse(QUOTE).unwrap();
    let dcap_qvl::quote::Report::SgxEnclave(r) = quote.report else { panic!("an SGX quote") };
    tcp_attestation::Attested {
        tee: tcp_attestation::Tee::Sgx,
        measurement: r.mr_enclave,
        signer: Some(r.mr_signer),
        tcb_status: "ConfigurationAndSWHardeningNeeded".into(),
        advisory_ids: vec!["INTEL-SA-00289".into(), "INTEL-SA-00615".into()],
        tcb_evaluation_data_number: 17,
        // A single-package platform: its Processor-CA certificate states no configuration.
        platform_flags: PlatformFlags::default(),
        // The QE identity's issue date, 2025-06-19T10:01:18Z (the TCB info's is later).
        collateral_issued_at: 1_750_327_278,
        verified_at: now(),
        debug: r.attributes[0] & 0x02 != 0,
        report_data: r.report_data,
    }
}

fn policy() -> Policy {
    let s = sample();
    Policy {
        measurements: vec![s.measurement],
        signers: vec![s.signer.unwrap()],
        min_tcb: TcbRank::ConfigurationAndSwHardeningNeeded,
        min_tcb_evaluation_data_number: Some(17),
        ..Policy::default()
    }
}

#[test]
fn the_intel_quote_verifies_and_each_breach_has_its_own_error() {
    let s = sample();
    let verifier = Verifier::new(vec![INTEL_ROOT_CA_DER.to_vec()], policy(), true).unwrap();
    let attested = verifier.verify(QUOTE, COLLATERAL, now(), &s.report_data).unwrap();
    assert_eq!(attested, s);

    // Report data that does not bind our key and challenge: a stale or replayed quote.
    let fresh = tcp_attestation::Registration {
        chain_id: tcp_types::ChainId::new("attest-test").unwrap(),
        freshness: [7; 32],
        chain_keys: [0; 32],
        signing_key: [1; 32],
        x25519_key: [2; 32],
    }
    .report_data();
    assert_eq!(verifier.verify(QUOTE, COLLATERAL, now(), &fresh), Err(AttestationError::ReportDataMismatch));

    // Measurement, signer, TCB: the policy's own errors.
    let other = Verifier::new(vec![INTEL_ROOT_CA_DER.to_vec()], Policy { measurements: vec![[9; 32]], ..policy() }, true).unwrap();
    assert!(matches!(other.verify(QUOTE, COLLATERAL, now(), &s.report_data), Err(AttestationError::MeasurementNotAllowed(_))));
    let other = Verifier::new(vec![INTEL_ROOT_CA_DER.to_vec()], Policy { signers: vec![[9; 32]], ..policy() }, true).unwrap();
    assert!(matches!(other.verify(QUOTE, COLLATERAL, now(), &s.report_data), Err(AttestationError::SignerNotAllowed(_))));
    let strict = Verifier::new(vec![INTEL_ROOT_CA_DER.to_vec()], Policy { min_tcb: TcbRank::UpToDate, ..policy() }, true).unwrap();
    assert_eq!(
        strict.verify(QUOTE, COLLATERAL, now(), &s.report_data),
        Err(AttestationError::TcbStatus { status: "ConfigurationAndSWHardeningNeeded".into(), minimum: TcbRank::UpToDate })
    );

    // Expired collateral.
    assert!(matches!(verifier.verify(QUOTE, COLLATERAL, now() + 400 * 86_400, &s.report_data), Err(AttestationError::Untrusted(_))));
    // Malformed collateral.
    assert!(matches!(verifier.verify(QUOTE, b"{", now(), &s.report_data), Err(AttestationError::MalformedCollateral(_))));
}

#[test]
fn flipping_any_signed_byte_breaks_the_quote() {
    let s = sample();
    let verifier = Verifier::new(vec![INTEL_ROOT_CA_DER.to_vec()], policy(), true).unwrap();
    // Header (48 bytes), report body (384), then the signature data; every 7th byte of the
    // signed part and the signature.
    for at in (0..QUOTE.len().min(48 + 384 + 64 + 64 + 384 + 64)).step_by(7) {
        let mut tampered = QUOTE.to_vec();
        tampered[at] ^= 0x01;
        let result = verifier.verify(&tampered, COLLATERAL, now(), &s.report_data);
        assert!(result.is_err(), "flipping byte {at} went unnoticed");
    }
}

#[test]
fn each_policy_item_refuses_the_intel_quote_with_its_own_error() {
    let s = sample();
    let verify = |policy: Policy| {
        Verifier::new(vec![INTEL_ROOT_CA_DER.to_vec()], policy, true).unwrap().verify(QUOTE, COLLATERAL, now(), &s.report_data)
    };
    assert!(verify(policy()).is_ok());
    assert_eq!(verify(Policy { tees: vec![Tee::Tdx], ..policy() }), Err(AttestationError::TeeNotAllowed("sgx")));
    // Collateral from before Intel's next TCB recovery (evaluation data number 18).
    assert_eq!(
        verify(Policy { min_tcb_evaluation_data_number: Some(18), ..policy() }),
        Err(AttestationError::TcbEvaluationTooOld { number: 17, minimum: 18 })
    );
    // The deny-list matches Intel's ids whatever their case.
    assert_eq!(
        verify(Policy { rejected_advisories: vec!["intel-sa-00615".into()], ..policy() }),
        Err(AttestationError::AdvisoryRefused("INTEL-SA-00615".into()))
    );
    assert!(verify(Policy { rejected_advisories: vec!["INTEL-SA-00334".into()], ..policy() }).is_ok());
    // Collateral age: verified 60 s after the TCB info's issue date, so the QE identity,
    // issued earlier, is the older part.
    let age = now() - s.collateral_issued_at;
    assert_eq!(
        verify(Policy { max_collateral_age_secs: Some(age - 1), ..policy() }),
        Err(AttestationError::CollateralTooOld { age_secs: age, max_secs: age - 1 })
    );
    assert!(verify(Policy { max_collateral_age_secs: Some(age), ..policy() }).is_ok());
}

/// Collateral that carries its own PCK chain would have dcap-qvl verify that chain instead of
/// the quote's (the one checked against the roots): refused, whatever the chain.
#[test]
fn collateral_may_not_substitute_the_pck_chain() {
    let s = sample();
    let verifier = Verifier::new(vec![INTEL_ROOT_CA_DER.to_vec()], policy(), true).unwrap();
    let parsed = dcap_qvl::quote::Quote::parse(QUOTE).unwrap();
    let own_chain = String::from_utf8(parsed.raw_cert_chain().unwrap().to_vec()).unwrap();
    let mut collateral: serde_json::Value = serde_json::from_slice(COLLATERAL).unwrap();
    collateral["pck_certificate_chain"] = serde_json::Value::String(own_chain.trim_end_matches('\0').to_string());
    let result = verifier.verify(QUOTE, collateral.to_string().as_bytes(), now(), &s.report_data);
    assert!(matches!(result, Err(AttestationError::MalformedCollateral(ref e)) if e.contains("PCK certificate chain")), "{result:?}");
}

/// What the host can vary without changing what was attested — ECDSA's twin signature
/// (r, n − s), which verifies too; the PCK chain's trailing NUL — gives the same quote id, and
/// a PCK chain with an extra certificate, which dcap-qvl's path builder would ignore, is refused.
#[test]
fn a_quote_its_high_s_twin_and_its_chain_variants_are_one_attestation() {
    let s = sample();
    let verifier = Verifier::new(vec![INTEL_ROOT_CA_DER.to_vec()], policy(), true).unwrap();
    // The attestation key's signature over the quote: the first 64 bytes of the signature data.
    let at = 48 + 384 + 4;
    let twin = with_twin_signature(QUOTE, at);
    assert_ne!(twin, QUOTE);
    assert_eq!(verifier.verify(&twin, COLLATERAL, now(), &s.report_data).unwrap(), s, "the twin verifies: it must not count twice");
    assert_eq!(quote_id(&twin).unwrap(), quote_id(QUOTE).unwrap());

    let parsed = dcap_qvl::quote::Quote::parse(QUOTE).unwrap();
    let chain = parsed.raw_cert_chain().unwrap().to_vec();
    assert_eq!(chain.last(), Some(&0), "Intel's library ends the chain with a NUL");
    let without_nul = with_chain(QUOTE, &chain[..chain.len() - 1]);
    assert_eq!(verifier.verify(&without_nul, COLLATERAL, now(), &s.report_data).unwrap(), s);
    assert_eq!(quote_id(&without_nul).unwrap(), quote_id(QUOTE).unwrap());
    // The PCK CA's certificate twice: dcap-qvl would build its path anyway.
    let text = std::str::from_utf8(&chain[..chain.len() - 1]).unwrap();
    let blocks: Vec<&str> = text.split_inclusive("-----END CERTIFICATE-----\n").collect();
    assert_eq!(blocks.len(), 3);
    let padded_chain = [blocks[0], blocks[1], blocks[1], blocks[2]].concat();
    let result = verifier.verify(&with_chain(QUOTE, padded_chain.as_bytes()), COLLATERAL, now(), &s.report_data);
    assert!(matches!(result, Err(AttestationError::MalformedQuote(ref e)) if e.contains("4 certificates")), "{result:?}");

    // A different report is another attestation.
    let mut other = QUOTE.to_vec();
    other[48 + 320] ^= 1; // report data
    assert_ne!(quote_id(&other).unwrap(), quote_id(QUOTE).unwrap());
}

/// An SGX v3 quote with its PCK chain replaced and its two enclosing lengths fixed.
fn with_chain(quote: &[u8], chain: &[u8]) -> Vec<u8> {
    let old = dcap_qvl::quote::Quote::parse(quote).unwrap().raw_cert_chain().unwrap().len();
    let core = tcp_attestation::quote::unpadded(quote).unwrap();
    let start = core.len() - old;
    let mut out = core[..start].to_vec();
    out.extend_from_slice(chain);
    let delta = chain.len() as i64 - old as i64;
    for at in [48 + 384, start - 4] {
        let v = u32::from_le_bytes(out[at..at + 4].try_into().unwrap()) as i64 + delta;
        out[at..at + 4].copy_from_slice(&(v as u32).to_le_bytes());
    }
    out
}

/// `quote` with the ECDSA signature at `at` replaced by its twin (r, n − s).
pub fn with_twin_signature(quote: &[u8], at: usize) -> Vec<u8> {
    let signature = p256::ecdsa::Signature::from_slice(&quote[at..at + 64]).unwrap();
    let (r, s) = signature.split_scalars();
    let twin = p256::ecdsa::Signature::from_scalars(r, -s).unwrap();
    let mut out = quote.to_vec();
    out[at..at + 64].copy_from_slice(&twin.to_bytes());
    out
}

#[test]
fn a_production_chain_refuses_other_roots_debug_and_no_minimum_evaluation() {
    assert_eq!(Verifier::new(vec![b"not intel".to_vec()], policy(), true).err(), Some(AttestationError::RootRefused));
    assert_eq!(
        Verifier::new(vec![INTEL_ROOT_CA_DER.to_vec()], Policy { allow_debug: true, ..policy() }, true).err(),
        Some(AttestationError::ProductionPolicy)
    );
    for nominal in [None, Some(0), Some(tcp_attestation::MIN_PRODUCTION_TCB_EVALUATION_DATA_NUMBER - 1)] {
        assert_eq!(
            Verifier::new(vec![INTEL_ROOT_CA_DER.to_vec()], Policy { min_tcb_evaluation_data_number: nominal, ..policy() }, true).err(),
            Some(AttestationError::ProductionPolicy),
            "{nominal:?}"
        );
    }
    // A development chain may name another root: Intel's quote then does not chain to it.
    // (Another root: Intel's with one byte of its public key changed.)
    let mut other_root = INTEL_ROOT_CA_DER.to_vec();
    let key = other_root.windows(4).position(|w| w == [0x03, 0x42, 0x00, 0x04]).expect("an uncompressed P-256 key");
    other_root[key + 10] ^= 0x01;
    let dev = Verifier::new(vec![other_root], policy(), false).unwrap();
    assert_eq!(dev.verify(QUOTE, COLLATERAL, now(), &sample().report_data), Err(AttestationError::UnknownRoot));
}
