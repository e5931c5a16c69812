//! The precommit extension carries a validator's σ and φ partials; what it accepts, keeps and
//! recovers, and what it refuses.

use commonware_cryptography::Signer as _;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::sync::Arc;
use tcp_beacon::dkg::run_local_ceremony;
use tcp_beacon::{BeaconExtension, Ceremony, Finality, Previous, SharingVerifier, beacon_message, verify_finality};
use tcp_consensus::PrecommitExtension;
use tcp_crypto::insecure_ed25519_from_seed;
use tcp_types::{ChainId, Digest, Height, Round, ValidatorIndex};

struct Net {
    chain: ChainId,
    verifier: Arc<SharingVerifier>,
    signers: Vec<BeaconExtension>,
    participants: Vec<Option<u32>>,
    message: Vec<u8>,
}

const H: Height = Height(9);

fn net() -> Net {
    let keys: Vec<_> = (0..4).map(insecure_ed25519_from_seed).collect();
    let public: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
    let ceremony = Ceremony::new(0, None, &public, &public).unwrap();
    let (_, output, shares) = run_local_ceremony(&ceremony, &keys, &[], &mut ChaCha20Rng::seed_from_u64(3)).unwrap();
    let verifier = Arc::new(SharingVerifier::new(output.public().clone(), None));
    let chain = ChainId::new("shares-test").unwrap();
    let message = beacon_message(&chain, H, &Previous::Seed(Digest([1; 32])));
    let participants: Vec<Option<u32>> = public.iter().map(|k| tcp_beacon::dkg::share_index(&output, k)).collect();
    let signers = public
        .iter()
        .map(|k| {
            let share = shares.iter().find(|(key, _)| key == k).map(|(_, s)| s.clone());
            BeaconExtension::active(chain.clone(), H, verifier.clone(), participants.clone(), share, Some(message.clone()))
        })
        .collect();
    Net { chain, verifier, signers, participants, message }
}

impl Net {
    fn observer(&self) -> BeaconExtension {
        BeaconExtension::active(self.chain.clone(), H, self.verifier.clone(), self.participants.clone(), None, Some(self.message.clone()))
    }
}

fn value(tag: u8) -> Digest {
    Digest([tag; 32])
}

#[test]
fn both_partials_verify_and_recover_phi_of_the_round_and_value() {
    let net = net();
    let observer = net.observer();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (round, v) = (Round(2), value(7));
    let extensions: Vec<_> = net.signers.iter().map(|s| s.extend(H, round, &v)).collect();
    let items: Vec<_> = extensions.iter().enumerate().map(|(i, e)| (ValidatorIndex(i as u32), round, v, &e[..])).collect();
    assert_eq!(observer.verify_batch(&mut rng, &items), vec![true; 4]);
    let phi = observer.recover_finality(round, &v).expect("a quorum");
    let key = net.verifier.sharing().public();
    assert!(verify_finality(key, &net.chain, H, &v, &Finality { round, signature: phi }));
    assert!(observer.recover().is_some());
    // Nothing recovers for another round or value.
    assert!(observer.recover_finality(Round(3), &v).is_none());
    assert!(observer.recover_finality(round, &value(8)).is_none());
}

#[test]
fn an_extension_for_another_round_value_or_validator_is_refused() {
    let net = net();
    let observer = net.observer();
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let ext = net.signers[1].extend(H, Round(0), &value(1));
    let one = |r: Round, v: Digest, who: u32, e: &[u8], rng: &mut ChaCha20Rng| observer.verify_batch(rng, &[(ValidatorIndex(who), r, v, e)])[0];
    assert!(!one(Round(1), value(1), 1, &ext, &mut rng), "another round");
    assert!(!one(Round(0), value(2), 1, &ext, &mut rng), "another value");
    assert!(!one(Round(0), value(1), 2, &ext, &mut rng), "another validator");
    // σ's half alone, or with trailing bytes: malformed.
    assert!(!one(Round(0), value(1), 1, &ext[..ext.len() / 2], &mut rng));
    let mut longer = ext.to_vec();
    longer.push(0);
    assert!(!one(Round(0), value(1), 1, &longer, &mut rng));
    // Refused again (remembered), and the genuine one still verifies.
    assert!(!one(Round(1), value(1), 1, &ext, &mut rng));
    assert!(one(Round(0), value(1), 1, &ext, &mut rng));
    // The core's per-vote check agrees.
    assert!(observer.verify(H, Round(0), ValidatorIndex(1), &value(1), &ext));
    assert!(!observer.verify(H, Round(5), ValidatorIndex(1), &value(1), &ext));
}

#[test]
fn a_validator_precommitting_many_values_keeps_its_latest_partials() {
    let net = net();
    let observer = net.observer();
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    // Validator 0 precommits a new value in each of rounds 0..6 (more than are kept).
    for r in 0..6u32 {
        let ext = net.signers[0].extend(H, Round(r), &value(r as u8));
        assert!(observer.verify_batch(&mut rng, &[(ValidatorIndex(0), Round(r), value(r as u8), &ext[..])])[0]);
    }
    // The decision in round 6 by exactly a quorum, validator 0 among it: its partial of the
    // decided round is kept (its oldest make room), so φ recovers.
    let v = value(60);
    let extensions: Vec<_> = net.signers.iter().take(3).map(|s| s.extend(H, Round(6), &v)).collect();
    let items: Vec<_> = extensions.iter().enumerate().map(|(i, e)| (ValidatorIndex(i as u32), Round(6), v, &e[..])).collect();
    assert_eq!(observer.verify_batch(&mut rng, &items), vec![true; 3]);
    assert!(observer.recover_finality(Round(6), &v).is_some());
}
