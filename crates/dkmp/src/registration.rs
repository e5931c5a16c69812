//! What a validator decides on an enclave's registration (DESIGN §5.4 "Enclave registration";
//! issue 19, item 1): the enclave's registration quote binds its ed25519 and X25519 keys to the
//! chain and to a freshness value the chain chose — R of a recent height, so no registration is
//! prepared in advance — and is verified on the chain's one path at the inclusion block's time,
//! against collateral held on chain, under the genesis policy. What it yields is the
//! [`EnclaveRecord`] the release rules read: it expires after the chain's attestation period and
//! lapses when the policy changes (its version is recorded).
//!
//! Cheap checks come first — size, compute node, freshness, the quote's id against those
//! already registered — so an unauthenticated registration costs a DCAP verification only once
//! it names a bonded compute node, a current freshness value and a new quote.

use tcp_attestation::quote::quote_id;
use tcp_attestation::{AttestationError, Registration, TcbRank, Verifier};
use tcp_types::ChainId;

use crate::release::EnclaveRecord;

/// A registration quote with its certification data is about 4–6 KiB; more is refused unread.
pub const MAX_QUOTE_BYTES: usize = 16 * 1024;

/// What an enclave's compute node submits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnclaveRegistration {
    /// The compute node's operator the enclave serves.
    pub operator: [u8; 20],
    /// The height whose R, with the operator, makes the registration's freshness value
    /// ([`registration_freshness`]).
    pub freshness_height: u64,
    pub signing_key: [u8; 32],
    pub x25519_key: [u8; 32],
    pub quote: Vec<u8>,
}

/// The freshness value an enclave's registration quote must carry: R of a recent height bound to
/// the compute node's operator, so the quote is fresh and is for that operator only — another
/// node copying it from the mempool under its own operator does not verify. (The state must also
/// check that the operator is the transaction's sender.)
pub fn registration_freshness(r: &[u8; 32], operator: &[u8; 20]) -> [u8; 32] {
    tcp_crypto::sha256(&[b"tcp/dkmp/registration-freshness", r, operator]).0
}

/// A validator's committed state, as the registration rules read it.
pub trait RegistrationView {
    fn chain_id(&self) -> &ChainId;
    /// The inclusion block's height and time (Unix seconds): quotes are verified at it.
    fn height(&self) -> u64;
    fn block_time_secs(&self) -> u64;
    /// R of `height` if it is recent enough to serve as freshness (the chain's window).
    fn freshness_at(&self, height: u64) -> Option<[u8; 32]>;
    fn compute_node_in_service(&self, operator: &[u8; 20]) -> bool;
    /// Whether a quote with this id was registered already.
    fn quote_registered(&self, id: &[u8; 32]) -> bool;
    /// The newest collateral on chain for this quote's platform (dcap-qvl JSON).
    fn collateral_for(&self, quote: &[u8]) -> Option<Vec<u8>>;
    /// The policy's version (a change lapses earlier registrations) and verifier.
    fn policy_version(&self) -> u64;
    fn verifier(&self) -> &Verifier;
    /// Heights a registration stays current.
    fn attestation_period(&self) -> u64;
    /// [`tcp_attestation::ChainKeys::digest`] of the chain's beacon group key and master public
    /// key, once both exist: a registration's quote must name it.
    fn chain_keys(&self) -> Option<[u8; 32]>;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RegistrationRefused {
    #[error("the quote is {0} bytes, more than {MAX_QUOTE_BYTES}")]
    QuoteTooLarge(usize),
    #[error("the compute node is not registered, bonded and out of jail")]
    ComputeNodeNotInService,
    #[error("height {0} is not a current freshness height (unknown, in the future or too old): quote again")]
    StaleFreshness(u64),
    #[error("malformed quote: {0}")]
    MalformedQuote(String),
    #[error("this quote was registered already (a replay)")]
    ReplayedQuote,
    #[error("no collateral on chain for this quote's platform: post it first")]
    NoCollateral,
    #[error("the chain has no master public key yet (the group's first DKG has not completed): register later")]
    ChainKeysUnknown,
    #[error("the registration does not verify: {0}")]
    Attestation(#[from] AttestationError),
}

/// Decide on `registration`: the record to keep and the quote's id (kept so the quote is never
/// registered twice).
pub fn admit_registration(
    view: &impl RegistrationView,
    registration: &EnclaveRegistration,
) -> Result<(EnclaveRecord, [u8; 32]), RegistrationRefused> {
    if registration.quote.len() > MAX_QUOTE_BYTES {
        return Err(RegistrationRefused::QuoteTooLarge(registration.quote.len()));
    }
    if !view.compute_node_in_service(&registration.operator) {
        return Err(RegistrationRefused::ComputeNodeNotInService);
    }
    let r = view.freshness_at(registration.freshness_height).ok_or(RegistrationRefused::StaleFreshness(registration.freshness_height))?;
    let freshness = registration_freshness(&r, &registration.operator);
    let id = quote_id(&registration.quote).map_err(RegistrationRefused::MalformedQuote)?;
    if view.quote_registered(&id) {
        return Err(RegistrationRefused::ReplayedQuote);
    }
    let chain_keys = view.chain_keys().ok_or(RegistrationRefused::ChainKeysUnknown)?;
    let collateral = view.collateral_for(&registration.quote).ok_or(RegistrationRefused::NoCollateral)?;
    let expected = Registration {
        chain_id: view.chain_id().clone(),
        freshness,
        chain_keys,
        signing_key: registration.signing_key,
        x25519_key: registration.x25519_key,
    };
    let verified = view.verifier().verify_registration(&registration.quote, &collateral, view.block_time_secs(), &expected)?;
    let attested = verified.attested;
    let tcb_rank = TcbRank::parse(&attested.tcb_status).unwrap_or(TcbRank::Revoked) as u8;
    let record = EnclaveRecord {
        operator: registration.operator,
        measurement: attested.measurement,
        tcb_rank,
        tcb_evaluation_data_number: attested.tcb_evaluation_data_number,
        debug: attested.debug,
        expires_at: view.height().saturating_add(view.attestation_period()),
        policy_version: view.policy_version(),
    };
    Ok((record, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng as _;
    use std::time::Duration;
    use tcp_attestation::{DevPki, DevPlatform, EnclaveIdentity, PlatformTcb, Policy, QuoteBackend, SimulatedBackend, Tee};

    /// 2026-11-01, inside the development PKI's validity.
    const START: u64 = 1_793_491_200;
    const MEASUREMENT: [u8; 32] = [0x5a; 32];
    const CHAIN_KEYS: [u8; 32] = [0xc4; 32];

    struct View {
        chain: ChainId,
        verifier: Verifier,
        collateral: Option<Vec<u8>>,
        registered: Vec<[u8; 32]>,
        in_service: bool,
        time: u64,
        chain_keys: Option<[u8; 32]>,
    }

    fn r(height: u64) -> [u8; 32] {
        tcp_crypto::sha256(&[b"R", &height.to_be_bytes()]).0
    }

    impl RegistrationView for View {
        fn chain_id(&self) -> &ChainId {
            &self.chain
        }
        fn height(&self) -> u64 {
            100
        }
        fn block_time_secs(&self) -> u64 {
            self.time
        }
        fn freshness_at(&self, height: u64) -> Option<[u8; 32]> {
            (90..=100).contains(&height).then(|| r(height))
        }
        fn compute_node_in_service(&self, _: &[u8; 20]) -> bool {
            self.in_service
        }
        fn quote_registered(&self, id: &[u8; 32]) -> bool {
            self.registered.contains(id)
        }
        fn collateral_for(&self, _: &[u8]) -> Option<Vec<u8>> {
            self.collateral.clone()
        }
        fn policy_version(&self) -> u64 {
            7
        }
        fn verifier(&self) -> &Verifier {
            &self.verifier
        }
        fn attestation_period(&self) -> u64 {
            1_000
        }
        fn chain_keys(&self) -> Option<[u8; 32]> {
            self.chain_keys
        }
    }

    impl View {
        fn clone_view(&self) -> View {
            View {
                chain: self.chain.clone(),
                verifier: self.verifier.clone(),
                collateral: self.collateral.clone(),
                registered: self.registered.clone(),
                in_service: self.in_service,
                time: self.time,
                chain_keys: self.chain_keys,
            }
        }
    }

    struct Setup {
        backend: SimulatedBackend,
        view: View,
    }

    fn setup() -> Setup {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let pki = DevPki::generate(&mut rng, START, Duration::from_secs(365 * 86_400)).unwrap();
        let platform = pki.issue_platform(&mut rng, PlatformTcb::default(), [0, 0x90, 0x6e, 0xd5, 0, 0]).unwrap();
        let backend = SimulatedBackend::new(DevPlatform::from_json(&platform.to_json()).unwrap(), Tee::Sgx, &mut rng);
        let verifier =
            Verifier::new(vec![pki.root_ca_der()], Policy { measurements: vec![MEASUREMENT], ..Policy::default() }, false).unwrap();
        let view = View {
            chain: ChainId::new("dkmp-test").unwrap(),
            verifier,
            collateral: Some(platform.collateral(Tee::Sgx).as_bytes().to_vec()),
            registered: Vec::new(),
            in_service: true,
            time: START + 86_400,
            chain_keys: Some(CHAIN_KEYS),
        };
        Setup { backend, view }
    }

    /// A registration as the enclave makes it: its keys and the chain's freshness value in the
    /// report data.
    fn register(setup: &Setup, freshness_height: u64, debug: bool) -> EnclaveRegistration {
        let registration = Registration {
            chain_id: setup.view.chain.clone(),
            freshness: registration_freshness(&r(freshness_height), &[9; 20]),
            chain_keys: CHAIN_KEYS,
            signing_key: [1; 32],
            x25519_key: [2; 32],
        };
        let evidence = setup.backend.quote(&EnclaveIdentity { measurement: MEASUREMENT, debug }, &registration.report_data()).unwrap();
        EnclaveRegistration { operator: [9; 20], freshness_height, signing_key: [1; 32], x25519_key: [2; 32], quote: evidence.quote }
    }

    #[test]
    fn a_fresh_registration_of_an_allowed_enclave_is_recorded_until_its_period_ends() {
        let s = setup();
        let (record, id) = admit_registration(&s.view, &register(&s, 95, false)).unwrap();
        assert_eq!(
            record,
            EnclaveRecord {
                operator: [9; 20],
                measurement: MEASUREMENT,
                tcb_rank: 0,
                tcb_evaluation_data_number: 1,
                debug: false,
                expires_at: 1_100,
                policy_version: 7
            }
        );
        assert_eq!(id, quote_id(&register(&s, 95, false).quote).unwrap());
    }

    /// Each way a registration can be wrong is refused with its own error, the cheap ones
    /// before any DCAP verification.
    #[test]
    fn each_bad_registration_has_its_own_error() {
        let mut s = setup();
        let good = register(&s, 95, false);

        let big = EnclaveRegistration { quote: vec![0; MAX_QUOTE_BYTES + 1], ..good.clone() };
        assert_eq!(admit_registration(&s.view, &big), Err(RegistrationRefused::QuoteTooLarge(MAX_QUOTE_BYTES + 1)));
        // Freshness from too long ago, or from a height the chain has not reached: prepared in
        // advance, or a replay of an old quote.
        for height in [50, 101] {
            let stale = EnclaveRegistration { freshness_height: height, ..register(&s, height, false) };
            assert_eq!(admit_registration(&s.view, &stale), Err(RegistrationRefused::StaleFreshness(height)));
        }
        // The quote names one freshness value; the registration claims another height.
        let moved = EnclaveRegistration { freshness_height: 96, ..good.clone() };
        assert!(matches!(admit_registration(&s.view, &moved), Err(RegistrationRefused::Attestation(AttestationError::ReportDataMismatch))));
        // Another compute node copying the registration under its own operator (front-running):
        // the quote's freshness names the original operator.
        let copied = EnclaveRegistration { operator: [8; 20], ..good.clone() };
        assert!(matches!(
            admit_registration(&s.view, &copied),
            Err(RegistrationRefused::Attestation(AttestationError::ReportDataMismatch))
        ));
        // That refusal is the cheap one, before any DCAP verification: even with collateral
        // that would not parse, a copy fails on its report data.
        let mut garbled = View { collateral: Some(b"not collateral".to_vec()), ..s.view.clone_view() };
        garbled.registered.clear();
        assert!(matches!(
            admit_registration(&garbled, &copied),
            Err(RegistrationRefused::Attestation(AttestationError::ReportDataMismatch))
        ));
        // Keys other than the quoted ones: the host cannot register keys it holds.
        let swapped = EnclaveRegistration { signing_key: [3; 32], ..good.clone() };
        assert!(matches!(
            admit_registration(&s.view, &swapped),
            Err(RegistrationRefused::Attestation(AttestationError::ReportDataMismatch))
        ));
        assert!(matches!(
            admit_registration(&s.view, &EnclaveRegistration { quote: good.quote[..200].to_vec(), ..good.clone() }),
            Err(RegistrationRefused::MalformedQuote(_))
        ));
        let debug = register(&s, 95, true);
        assert!(matches!(admit_registration(&s.view, &debug), Err(RegistrationRefused::Attestation(AttestationError::DebugEnclave))));

        s.view.registered.push(quote_id(&good.quote).unwrap());
        assert_eq!(admit_registration(&s.view, &good), Err(RegistrationRefused::ReplayedQuote));
        s.view.registered.clear();
        s.view.collateral = None;
        assert_eq!(admit_registration(&s.view, &good), Err(RegistrationRefused::NoCollateral));
        // An enclave that pinned keys other than the chain's (a host handing it another group's).
        s.view.collateral = setup().view.collateral;
        s.view.chain_keys = Some([0xc5; 32]);
        assert!(matches!(
            admit_registration(&s.view, &good),
            Err(RegistrationRefused::Attestation(AttestationError::ReportDataMismatch))
        ));
        s.view.chain_keys = None;
        assert_eq!(admit_registration(&s.view, &good), Err(RegistrationRefused::ChainKeysUnknown));
        s.view.chain_keys = Some(CHAIN_KEYS);
        s.view.collateral = setup().view.collateral;
        s.view.in_service = false;
        assert_eq!(admit_registration(&s.view, &good), Err(RegistrationRefused::ComputeNodeNotInService));
        s.view.in_service = true;
        // Verified at the block's time: collateral long expired by then refuses it.
        s.view.time = START + 400 * 86_400;
        assert!(matches!(admit_registration(&s.view, &good), Err(RegistrationRefused::Attestation(AttestationError::Untrusted(_)))));
    }
}
