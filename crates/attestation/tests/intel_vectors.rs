//! A real SGX quote from Intel hardware, with its PCS collateral, through TCP's verifier: it
//! verifies under Intel's root with a policy that allows it, and every kind of tampering or
//! policy breach fails with its own error.

use tcp_attestation::{AttestationError, INTEL_ROOT_CA_DER, Policy, TcbRank, Verifier};

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
        allow_debug: false,
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
fn a_production_chain_refuses_other_roots_and_debug() {
    assert_eq!(Verifier::new(vec![b"not intel".to_vec()], policy(), true).err(), Some(AttestationError::RootRefused));
    assert_eq!(
        Verifier::new(vec![INTEL_ROOT_CA_DER.to_vec()], Policy { allow_debug: true, ..policy() }, true).err(),
        Some(AttestationError::RootRefused)
    );
    // A development chain may name another root: Intel's quote then does not chain to it.
    // (Another root: Intel's with one byte of its public key changed.)
    let mut other_root = INTEL_ROOT_CA_DER.to_vec();
    let key = other_root.windows(4).position(|w| w == [0x03, 0x42, 0x00, 0x04]).expect("an uncompressed P-256 key");
    other_root[key + 10] ^= 0x01;
    let dev = Verifier::new(vec![other_root], policy(), false).unwrap();
    assert_eq!(dev.verify(QUOTE, COLLATERAL, now(), &sample().report_data), Err(AttestationError::UnknownRoot));
}
