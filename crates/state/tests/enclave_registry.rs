//! Enclaves and collateral on chain (issue 19, item 1), through Υ and Ω with real (simulated)
//! DCAP quotes under a development PKI: who can register what, and what each attack gets.

mod common;

use common::*;

#[test]
fn a_compute_nodes_enclave_registers_against_posted_collateral_and_expires_after_the_period() {
    let mut w = World::new(true);
    w.advance_to(5);
    let registration = w.registration(&w.operator.clone(), 3, key(7));
    let operator = w.operator.clone();
    assert_eq!(w.submit(&operator, registration.clone()), Err(TxError::Registration(RegistrationRefused::NoCollateral)));
    // Anyone may post the platform's collateral, proven genuine by a quote of the platform.
    let other = w.other.clone();
    let (collateral, witness) = (w.collateral(1), w.witness());
    w.submit(&other, Action::PostCollateral { collateral: collateral.clone(), witness }).unwrap();
    w.submit(&operator, registration).unwrap();
    let entry = w.state.enclave(&key(7)).unwrap();
    assert_eq!(
        (entry.record.operator, entry.record.measurement, entry.record.expires_at, entry.record.policy_version, entry.x25519_key),
        (operator.address().0, MEASUREMENT, 5 + PERIOD, 3, [2; 32])
    );
    assert_eq!((entry.tee, entry.registered_at, entry.record.debug, entry.record.tcb_rank), (Tee::Sgx, 5, false, 0));
    assert_eq!(w.state.enclaves_of(&operator.address()), vec![key(7)]);
    // Re-registering the same enclave before expiry (a fresh quote) renews its record.
    w.advance_to(8);
    let renewal = w.registration(&operator, 6, key(7));
    w.submit(&operator, renewal).unwrap();
    assert_eq!(w.state.enclave(&key(7)).unwrap().record.expires_at, 8 + PERIOD);
    assert_eq!(w.state.enclaves_of(&operator.address()), vec![key(7)]);
}

#[test]
fn a_replayed_registration_quote_is_refused_and_its_id_is_forgotten_only_once_it_is_stale() {
    let mut w = World::new(true);
    w.advance_to(5);
    let operator = w.operator.clone();
    let (collateral, witness) = (w.collateral(1), w.witness());
    w.submit(&operator, Action::PostCollateral { collateral, witness }).unwrap();
    let registration = w.registration(&operator, 3, key(7));
    w.submit(&operator, registration.clone()).unwrap();
    assert_eq!(w.submit(&operator, registration.clone()), Err(TxError::Registration(RegistrationRefused::ReplayedQuote)));
    // Height 3 leaves the window after block 3 + WINDOW: its R and the quote ids registered
    // under it go, and the quote is stale from then on.
    w.advance_to(3 + WINDOW);
    assert_eq!(w.submit(&operator, registration.clone()), Err(TxError::Registration(RegistrationRefused::ReplayedQuote)));
    w.end_block();
    assert!(w.state.get_entry(&randomness_key(3)).is_none());
    assert_eq!(w.submit(&operator, registration), Err(TxError::Registration(RegistrationRefused::StaleFreshness(3))));
    // Only the window's R values are kept: R of the block before last is the newest (a block
    // carries σ of its parent, kept at its end).
    let kept: Vec<u64> = (0..w.height).filter(|h| w.state.registration_randomness(*h).is_some()).collect();
    assert_eq!(kept, (w.height - WINDOW..w.height - 1).collect::<Vec<_>>());
}

#[test]
fn a_registration_copied_under_another_operator_does_not_verify() {
    let mut w = World::new(true);
    w.advance_to(5);
    let (operator, other) = (w.operator.clone(), w.other.clone());
    let (collateral, witness) = (w.collateral(1), w.witness());
    w.submit(&other, Action::PostCollateral { collateral, witness }).unwrap();
    // `other` front-runs the operator's registration from the mempool, as its own.
    let registration = w.registration(&operator, 3, key(7));
    assert_eq!(
        w.submit(&other, registration.clone()),
        Err(TxError::Registration(RegistrationRefused::Attestation(AttestationError::ReportDataMismatch)))
    );
    w.submit(&operator, registration).unwrap();
    assert_eq!(w.state.enclave(&key(7)).unwrap().record.operator, operator.address().0);
    // Nor can another node register the same enclave key for itself (a host relaying the
    // enclave of another node), even with a quote made for it.
    let relayed = w.registration(&other, 3, key(7));
    assert_eq!(w.submit(&other, relayed), Err(TxError::EnclaveKeyTaken));
}

#[test]
fn freshness_from_the_future_or_not_yet_on_chain_is_refused() {
    let mut w = World::new(true);
    w.advance_to(5);
    let operator = w.operator.clone();
    let (collateral, witness) = (w.collateral(1), w.witness());
    w.submit(&operator, Action::PostCollateral { collateral, witness }).unwrap();
    // At height 5 the newest R on chain is R_3 (block 4 carried σ_3).
    for height in [4, 5, 6, 100] {
        let registration = w.registration(&operator, height, key(7));
        assert_eq!(w.submit(&operator, registration), Err(TxError::Registration(RegistrationRefused::StaleFreshness(height))));
    }
}

#[test]
fn only_a_bonded_compute_node_registers_and_its_enclaves_leave_with_it() {
    let mut w = World::new(true);
    w.advance_to(5);
    let operator = w.operator.clone();
    let (collateral, witness) = (w.collateral(1), w.witness());
    w.submit(&operator, Action::PostCollateral { collateral, witness }).unwrap();
    let stranger = AccountKey::from_bytes(&[3; 32]).unwrap();
    w.state.set_account(stranger.address(), tcp_state::Account { balance: 1 << 70, nonce: 0 }).unwrap();
    let registration = w.registration(&stranger, 3, key(9));
    assert_eq!(w.submit(&stranger, registration), Err(TxError::Registration(RegistrationRefused::ComputeNodeNotInService)));
    let registration = w.registration(&operator, 3, key(7));
    w.submit(&operator, registration).unwrap();
    w.submit(&operator, Action::UnbondCompute { amount: 5_000 }).unwrap();
    assert_eq!((w.state.enclave(&key(7)), w.state.enclaves_of(&operator.address())), (None, vec![]));
}

#[test]
fn a_compute_node_keeps_a_bounded_number_of_enclave_records_the_newest_replacing_the_oldest() {
    let mut w = World::new(true);
    w.advance_to(5);
    let operator = w.operator.clone();
    let (collateral, witness) = (w.collateral(1), w.witness());
    w.submit(&operator, Action::PostCollateral { collateral, witness }).unwrap();
    for i in 0..MAX_ENCLAVES_PER_OPERATOR as u8 {
        let registration = w.registration(&operator, 3, key(10 + i));
        w.submit(&operator, registration).unwrap();
    }
    // A ninth (an enclave restarted once more) replaces the oldest record.
    let one_more = w.registration(&operator, 3, key(99));
    w.submit(&operator, one_more).unwrap();
    let mut expected: Vec<[u8; 32]> = (11..10 + MAX_ENCLAVES_PER_OPERATOR as u8).map(key).collect();
    expected.push(key(99));
    assert_eq!(w.state.enclaves_of(&operator.address()), expected);
    assert!(w.state.enclave(&key(10)).is_none() && w.state.enclave(&key(11)).is_some());
    // Once they have expired, a registration drops them all.
    w.state.set_account(operator.address(), tcp_state::Account { balance: 1 << 80, nonce: w.nonces[&operator.address().0] }).unwrap();
    for _ in 0..=PERIOD {
        w.end_block();
    }
    let fresh = w.registration(&operator, w.height - 2, key(98));
    w.submit(&operator, fresh).unwrap();
    assert_eq!(w.state.enclaves_of(&operator.address()), vec![key(98)]);
    assert!(w.state.enclave(&key(11)).is_none());
}

#[test]
fn collateral_is_replaced_only_by_newer_genuine_collateral() {
    let mut w = World::new(true);
    w.advance_to(3);
    let other = w.other.clone();
    let witness = w.witness();
    let (older, newer) = (w.collateral(0), w.collateral(1));
    w.submit(&other, Action::PostCollateral { collateral: newer.clone(), witness: witness.clone() }).unwrap();
    // Rolling back to older collateral (un-revoking, undoing a TCB recovery) is refused.
    assert_eq!(
        w.submit(&other, Action::PostCollateral { collateral: older, witness: witness.clone() }),
        Err(TxError::Collateral(CollateralRefused::NotNewer))
    );
    // A forged TCB info does not verify.
    let mut forged: serde_json::Value = serde_json::from_slice(&newer).unwrap();
    let edited = forged["tcb_info"].as_str().unwrap().replace("\"tcbEvaluationDataNumber\":1", "\"tcbEvaluationDataNumber\":9");
    forged["tcb_info"] = edited.into();
    assert!(matches!(
        w.submit(&other, Action::PostCollateral { collateral: forged.to_string().into_bytes(), witness }),
        Err(TxError::Collateral(CollateralRefused::DoesNotVerify(_)))
    ));
}

#[test]
fn a_chain_without_attestation_rules_registers_no_enclave() {
    let mut w = World::new(false);
    w.advance_to(5);
    let operator = w.operator.clone();
    let registration = w.registration(&operator, 3, key(7));
    assert_eq!(w.submit(&operator, registration), Err(TxError::EnclavesDisabled));
    let (collateral, witness) = (w.collateral(1), w.witness());
    assert_eq!(w.submit(&operator, Action::PostCollateral { collateral, witness }), Err(TxError::EnclavesDisabled));
    assert!(w.state.registration_randomness(3).is_none(), "no R is kept for registrations that cannot happen");
}
