//! A real TD 1.5 quote (version 5, body type 3) from Intel hardware, with its PCS collateral
//! (issue 18, item 3): it parses, is canonical, and gets dcap-qvl's real verdict — every
//! signature verifies (certificate chain, QE report, the quote) and the platform's TCB matches
//! none of the levels in Intel's TCB info (Intel's QVL calls this TCB_NOT_SUPPORTED; this
//! sample is dcap-qvl's "outdated" fixture). Not `MalformedQuote`.

use tcp_attestation::quote::quote_id;
use tcp_attestation::{AttestationError, INTEL_ROOT_CA_DER, Policy, Tee, Verifier, identity_of};

const QUOTE: &[u8] = include_bytes!("vectors/intel_tdx_v5_quote.bin");
const COLLATERAL: &[u8] = include_bytes!("vectors/intel_tdx_v5_quote_collateral.json");
/// A minute after the TCB info's issue date (2026-02-18T10:58:51Z).
const AT: u64 = 1_771_412_391;

fn intel() -> Verifier {
    Verifier::new(vec![INTEL_ROOT_CA_DER.to_vec()], Policy { min_tcb_evaluation_data_number: Some(18), ..Policy::default() }, true).unwrap()
}

#[test]
fn a_real_td15_quote_parses_and_gets_its_tcb_verdict() {
    assert_eq!(&QUOTE[..2], &[5, 0], "a version 5 quote");
    assert_eq!(&QUOTE[48..50], &[3, 0], "with a TD 1.5 report body");
    let identity = identity_of(QUOTE).unwrap();
    assert_eq!(identity.tee, Tee::Tdx);
    assert!(!identity.debug);
    assert!(identity.components.iter().any(|(name, value)| *name == "mrtd" && value.starts_with("273828c46252")));
    // Canonical: no unread bytes.
    assert!(tcp_attestation::quote::check_canonical(QUOTE).is_ok());
    assert!(quote_id(QUOTE).is_ok());

    // The verdict: every signature verified, then no TCB level matched.
    let verdict = intel().verify_quote(QUOTE, COLLATERAL, AT);
    assert!(matches!(verdict, Err(AttestationError::Untrusted(ref e)) if e.contains("No matching TCB level")), "{verdict:?}");
    // A changed byte of the TD report fails earlier, at the quote's signature.
    let mut tampered = QUOTE.to_vec();
    tampered[48 + 6 + 136] ^= 1;
    let verdict = intel().verify_quote(&tampered, COLLATERAL, AT);
    assert!(matches!(verdict, Err(AttestationError::Untrusted(ref e)) if !e.contains("No matching TCB level")), "{verdict:?}");
}

/// The v5 body header must agree with the TEE type and the body's size.
#[test]
fn a_v5_body_header_that_lies_is_refused() {
    for (at, value, why) in
        [(48usize, 1u8, "an SGX body type in a TDX quote"), (48, 9, "an unknown body type"), (50, 0x89, "a wrong body size")]
    {
        let mut bad = QUOTE.to_vec();
        bad[at] = value;
        let result = intel().verify_quote(&bad, COLLATERAL, AT);
        assert!(matches!(result, Err(AttestationError::MalformedQuote(_))), "{why}: {result:?}");
        assert!(tcp_attestation::quote::check_canonical(&bad).is_err(), "{why}");
    }
}
