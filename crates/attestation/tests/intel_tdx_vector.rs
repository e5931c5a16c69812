//! A real TDX quote v4 from Intel hardware, with its PCS collateral (issue 18, item 3): it
//! verifies under Intel's root with its real TCB verdict, including the zero padding Intel's
//! quoting library leaves after the signature data — which is not part of the attestation, so
//! the padded and unpadded copies are one attestation, and padding that is not zero or is too
//! long is refused.

use tcp_attestation::quote::{MAX_QUOTE_PADDING, quote_id, unpadded};
use tcp_attestation::{AttestationError, INTEL_ROOT_CA_DER, PlatformFlags, Policy, Tee, Verifier, identity_of, td_identity};

const QUOTE: &[u8] = include_bytes!("vectors/intel_tdx_quote.bin");
const COLLATERAL: &[u8] = include_bytes!("vectors/intel_tdx_quote_collateral.json");
/// A minute after the later of the collateral's TCB-info and QE-identity issue dates.
const AT: u64 = 1_750_329_207;

/// The TD identity of the quote: SHA-256 over its MRTD, RTMR0–3, configuration registers,
/// attributes and XFAM (computed once, by `tcpchain attest identity`).
const IDENTITY: &str = "398e92edd62c8e5a4e408899cce0ac7f6a12fbe504f07c3914c81799f14dc2e0";

fn policy() -> Policy {
    let mut identity = [0u8; 32];
    identity.copy_from_slice(&tcp_types::hex::decode(IDENTITY).unwrap());
    // The platform is a multi-package one with SMT on: its PCK certificate says so.
    Policy {
        measurements: vec![identity],
        min_tcb_evaluation_data_number: Some(17),
        allow_smt: true,
        allow_dynamic_platform: true,
        allow_cached_keys: true,
        ..Policy::default()
    }
}

fn intel() -> Verifier {
    Verifier::new(vec![INTEL_ROOT_CA_DER.to_vec()], policy(), true).unwrap()
}

#[test]
fn a_real_tdx_quote_with_intels_padding_verifies_with_its_tcb_verdict() {
    let attested = intel().verify_quote(QUOTE, COLLATERAL, AT).unwrap();
    assert_eq!(attested.tee, Tee::Tdx);
    assert_eq!(attested.tcb_status, "UpToDate");
    assert_eq!(attested.tcb_evaluation_data_number, 17);
    assert_eq!(attested.platform_flags, PlatformFlags { smt: Some(true), dynamic_platform: Some(true), cached_keys: Some(true) });
    assert!(!attested.debug);
    assert_eq!(tcp_types::hex::encode(&attested.measurement), IDENTITY);
    // The oldest of the monthly collateral is the PCK CRL (thisUpdate 2025-06-19T10:00:35Z),
    // issued before the TCB info and the QE identity.
    assert_eq!(attested.collateral_issued_at, 1_750_327_235);
    assert!(intel().verify(QUOTE, COLLATERAL, AT, &attested.report_data).is_ok());

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

/// The TD identity covers the whole TD, not MRTD's first 32 bytes: any register of the
/// report changes it. (The signed quote cannot be altered, so the registers are changed in
/// the parsed report the identity is computed from.)
#[test]
fn the_td_identity_covers_mrtd_every_rtmr_the_config_registers_attributes_and_xfam() {
    let parsed = dcap_qvl::quote::Quote::parse(QUOTE).unwrap();
    let dcap_qvl::quote::Report::TD10(report) = parsed.report else { panic!("a TD 1.0 report") };
    let identity = td_identity(&report);
    assert_eq!(tcp_types::hex::encode(&identity), IDENTITY);
    assert_eq!(identity_of(QUOTE).unwrap().measurement, identity);
    let variants: [(&str, fn(&mut dcap_qvl::quote::TDReport10)); 11] = [
        ("MRTD's first bytes", |r| r.mr_td[0] ^= 1),
        ("MRTD's last bytes", |r| r.mr_td[47] ^= 1),
        ("RTMR0", |r| r.rt_mr0[5] ^= 1),
        ("RTMR1", |r| r.rt_mr1[5] ^= 1),
        ("RTMR2", |r| r.rt_mr2[5] ^= 1),
        ("RTMR3", |r| r.rt_mr3[47] ^= 1),
        ("MRCONFIGID", |r| r.mr_config_id[0] ^= 1),
        ("MROWNER", |r| r.mr_owner[0] ^= 1),
        ("MROWNERCONFIG", |r| r.mr_owner_config[0] ^= 1),
        ("TD attributes (debug)", |r| r.td_attributes[0] ^= 1),
        ("XFAM", |r| r.xfam[0] ^= 1),
    ];
    for (what, change) in variants {
        let mut other = report;
        change(&mut other);
        assert_ne!(td_identity(&other), identity, "{what} must change the TD identity");
    }
    // What verifies the platform, not the TD, does not: the TDX module and the report data.
    let mut same = report;
    same.mr_seam[0] ^= 1;
    same.report_data[0] ^= 1;
    assert_eq!(td_identity(&same), identity);
}

/// The PCK flags as policy, on a real platform that states all three.
#[test]
fn a_strict_policy_refuses_this_platforms_smt_dynamic_membership_and_cached_keys() {
    let report_data = identity_of(QUOTE).unwrap().report_data;
    let verify =
        |policy: Policy| Verifier::new(vec![INTEL_ROOT_CA_DER.to_vec()], policy, true).unwrap().verify(QUOTE, COLLATERAL, AT, &report_data);
    assert!(verify(policy()).is_ok());
    assert_eq!(
        verify(Policy { allow_smt: false, ..policy() }),
        Err(AttestationError::PlatformFlagRefused("SMT (hyper-threading) enabled"))
    );
    assert_eq!(
        verify(Policy { allow_dynamic_platform: false, ..policy() }),
        Err(AttestationError::PlatformFlagRefused("a dynamic platform"))
    );
    assert_eq!(verify(Policy { allow_cached_keys: false, ..policy() }), Err(AttestationError::PlatformFlagRefused("cached platform keys")));
    assert_eq!(verify(Policy { tees: vec![Tee::Sgx], ..policy() }), Err(AttestationError::TeeNotAllowed("tdx")));
}

/// Intel's TD quoting enclave signed this quote's QE report with a high-S signature, so
/// refusing high-S would refuse real hardware: both forms verify, and the padded copy, the
/// unpadded one and the low-S twin are one attestation (one quote id).
#[test]
fn intels_high_s_signature_and_padding_do_not_make_two_attestations() {
    const N_HALF: [u8; 32] = [
        0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b,
        0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
    ];
    let core = unpadded(QUOTE).unwrap();
    // v4: signature, attestation key, certification data type and size, QE report, its signature.
    let qe_signature = 48 + 584 + 4 + 128 + 6 + 384;
    assert!(QUOTE[qe_signature + 32..qe_signature + 64] > N_HALF[..], "Intel's QE report signature is high-S");
    let signature = p256::ecdsa::Signature::from_slice(&QUOTE[qe_signature..qe_signature + 64]).unwrap();
    let mut low_s = core.to_vec();
    low_s[qe_signature..qe_signature + 64].copy_from_slice(&signature.normalize_s().to_bytes());
    assert_ne!(low_s, core);
    let attested = intel().verify_quote(QUOTE, COLLATERAL, AT).unwrap();
    assert_eq!(intel().verify_quote(&low_s, COLLATERAL, AT).unwrap(), attested, "the low-S twin verifies too");
    assert_eq!(quote_id(QUOTE).unwrap(), quote_id(core).unwrap());
    assert_eq!(quote_id(QUOTE).unwrap(), quote_id(&low_s).unwrap());
}
