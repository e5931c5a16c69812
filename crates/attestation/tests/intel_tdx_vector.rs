//! A real TDX quote v4 from Intel hardware, with its PCS collateral (issue 18, item 3): it
//! verifies under Intel's root with its real TCB verdict, including the zero padding Intel's
//! quoting library leaves after the signature data — which is not part of the attestation, so
//! the padded and unpadded copies are one attestation, and padding that is not zero or is too
//! long is refused.

use tcp_attestation::quote::{MAX_QUOTE_PADDING, unpadded};
use tcp_attestation::{AttestationError, INTEL_ROOT_CA_DER, Policy, TcbRank, Tee, Verifier};

const QUOTE: &[u8] = include_bytes!("vectors/intel_tdx_quote.bin");
const COLLATERAL: &[u8] = include_bytes!("vectors/intel_tdx_quote_collateral.json");
/// A minute after the later of the collateral's TCB-info and QE-identity issue dates.
const AT: u64 = 1_750_329_207;

fn intel() -> Verifier {
    let policy = Policy { measurements: Vec::new(), signers: Vec::new(), min_tcb: TcbRank::UpToDate, allow_debug: false };
    Verifier::new(vec![INTEL_ROOT_CA_DER.to_vec()], policy, true).unwrap()
}

#[test]
fn a_real_tdx_quote_with_intels_padding_verifies_with_its_tcb_verdict() {
    let attested = intel().verify_quote(QUOTE, COLLATERAL, AT).unwrap();
    assert_eq!(attested.tee, Tee::Tdx);
    assert_eq!(attested.tcb_status, "UpToDate");
    assert!(!attested.debug);

    // The padding: 70 zero bytes after the signature data, not part of the attestation.
    let core = unpadded(QUOTE).unwrap();
    assert_eq!(QUOTE.len() - core.len(), 70);
    assert!(QUOTE[core.len()..].iter().all(|b| *b == 0));
    assert_eq!(intel().verify_quote(core, COLLATERAL, AT).unwrap(), attested, "one attestation, padded or not");

    // A padding byte that is not zero, or more padding than Intel's library leaves: refused.
    let mut dirty = QUOTE.to_vec();
    *dirty.last_mut().unwrap() = 1;
    assert!(matches!(intel().verify_quote(&dirty, COLLATERAL, AT), Err(AttestationError::MalformedQuote(_))));
    let mut long = core.to_vec();
    long.resize(core.len() + MAX_QUOTE_PADDING + 1, 0);
    assert!(matches!(intel().verify_quote(&long, COLLATERAL, AT), Err(AttestationError::MalformedQuote(_))));
    let mut most = core.to_vec();
    most.resize(core.len() + MAX_QUOTE_PADDING, 0);
    assert!(intel().verify_quote(&most, COLLATERAL, AT).is_ok());

    // A flipped byte of the TD report (MRTD) breaks the quote's signature.
    let mut tampered = QUOTE.to_vec();
    tampered[48 + 136] ^= 1;
    assert!(matches!(intel().verify_quote(&tampered, COLLATERAL, AT), Err(AttestationError::Untrusted(_))));
}
