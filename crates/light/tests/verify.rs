//! The light client against headers signed by a real sharing: a good header verifies, and every
//! kind of lie is refused with its own error.

use commonware_cryptography::Signer as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tcp_beacon::dkg::run_local_ceremony;
use tcp_beacon::finality::finality_point;
use tcp_beacon::signature::recover_signature;
use tcp_beacon::{Ceremony, Finality, FinalitySignature, finality_message};
use tcp_crypto::insecure_ed25519_from_seed;
use tcp_light::{BodyRoots, Header, LightClient, LightError};
use tcp_state::AccountState;
use tcp_types::{ChainId, Digest, Height, Round, ValidatorIndex};

struct Chain {
    client: LightClient,
    shares: Vec<tcp_beacon::dkg::BeaconShare>,
    sharing: tcp_beacon::PublicSharing,
    chain_id: ChainId,
}

fn chain() -> Chain {
    let keys: Vec<_> = (0..4).map(insecure_ed25519_from_seed).collect();
    let public: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
    let ceremony = Ceremony::new(0, None, &public, &public).unwrap();
    let (_, output, shares) = run_local_ceremony(&ceremony, &keys, &[], &mut ChaCha20Rng::seed_from_u64(7)).unwrap();
    let chain_id = ChainId::new("light-test").unwrap();
    let sharing = output.public().clone();
    Chain { client: LightClient::new(chain_id.clone(), *sharing.public()), shares: shares.into_iter().map(|(_, s)| s).collect(), sharing, chain_id }
}

impl Chain {
    fn sign(&self, header: &[u8], height: Height, round: Round) -> Finality {
        let id = tcp_crypto::sha256(&[header]);
        let point = finality_point(&finality_message(&self.chain_id, height, round, &id));
        let partials: Vec<_> = self.shares.iter().map(|s| point.sign(s)).collect();
        Finality { round, signature: FinalitySignature(recover_signature(&self.sharing, &partials).unwrap().0) }
    }
}

fn header(height: u64, parent: Digest, state_root: Digest) -> Header {
    Header {
        height: Height(height),
        round: Round(0),
        proposer: ValidatorIndex(1),
        parent,
        timestamp_ms: 1_000 + height,
        state_root,
        roots: BodyRoots::default(),
        previous_signature: None,
        previous_finality: None,
        extra_roots: Vec::new(),
    }
}

#[test]
fn a_signed_header_verifies_and_every_lie_is_refused() {
    let c = chain();
    let bytes = header(5, Digest([1; 32]), Digest([2; 32])).encode();
    let phi = c.sign(&bytes, Height(5), Round(2));
    let verified = c.client.verify_header(&bytes, &phi).unwrap();
    assert_eq!((verified.height(), verified.state_root()), (Height(5), Digest([2; 32])));

    // Another round than the one signed.
    let other_round = Finality { round: Round(3), ..phi };
    assert!(matches!(c.client.verify_header(&bytes, &other_round), Err(LightError::BadFinality { round: 3, .. })));
    // Any flipped byte of the header: it decodes to another header (another id), or not at all.
    for at in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[at] ^= 1;
        assert!(c.client.verify_header(&flipped, &phi).is_err(), "byte {at}");
    }
    // Another chain, another group key.
    let other_chain = LightClient::new(ChainId::new("other").unwrap(), *c.sharing.public());
    assert!(matches!(other_chain.verify_header(&bytes, &phi), Err(LightError::BadFinality { .. })));
    let other = chain_with_seed(8);
    assert!(matches!(other.verify_header(&bytes, &phi), Err(LightError::BadFinality { .. })));
    // Trailing bytes, a huge header.
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(c.client.verify_header(&longer, &phi), Err(LightError::Malformed(_))));
    assert!(matches!(c.client.verify_header(&vec![0; 100_000], &phi), Err(LightError::TooLarge(_))));
}

fn chain_with_seed(seed: u64) -> LightClient {
    let keys: Vec<_> = (0..4).map(insecure_ed25519_from_seed).collect();
    let public: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
    let ceremony = Ceremony::new(0, None, &public, &public).unwrap();
    let (_, output, _) = run_local_ceremony(&ceremony, &keys, &[], &mut ChaCha20Rng::seed_from_u64(seed)).unwrap();
    LightClient::new(ChainId::new("light-test").unwrap(), *output.public().public())
}

#[test]
fn state_proofs_and_ancestors_check_against_a_verified_header() {
    let c = chain();
    let address = tcp_state::Address([7; 20]);
    let config = tcp_state::StateConfig { chain_id: c.chain_id.clone(), min_gas_price: 1, staking: Default::default(), enclaves: None };
    let state = AccountState::genesis(config, &[(address, 1000)]).unwrap();
    let (root, proof) = state.prove_committed(&tcp_state::accounts::account_key(&address));
    let h3 = header(3, Digest([9; 32]), Digest([3; 32])).encode();
    let h4 = header(4, tcp_crypto::sha256(&[&h3]), Digest(root)).encode();
    let h5 = header(5, tcp_crypto::sha256(&[&h4]), Digest([5; 32])).encode();
    let top = c.client.verify_header(&h5, &c.sign(&h5, Height(5), Round(0))).unwrap();
    let ancestors = c.client.verify_ancestors(&top, &[h4.clone(), h3.clone()]).unwrap();
    assert_eq!(ancestors.iter().map(|h| h.height().0).collect::<Vec<_>>(), vec![4, 3]);
    assert!(c.client.verify_state_proof(&ancestors[0], &proof).unwrap().is_some());
    // The proof does not hold against another verified header's root.
    assert!(matches!(c.client.verify_state_proof(&top, &proof), Err(LightError::Proof(_))));
    // A forged ancestor (another state root) breaks the link.
    let forged = header(4, tcp_crypto::sha256(&[&h3]), Digest([0xaa; 32])).encode();
    assert!(matches!(c.client.verify_ancestors(&top, &[forged]), Err(LightError::BrokenLink { height: 4, .. })));
    // Out of order.
    assert!(matches!(c.client.verify_ancestors(&top, &[h3]), Err(LightError::BrokenLink { .. })));
}
