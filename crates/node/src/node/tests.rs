use super::*;
use crate::genesis::tests::{test_genesis_of, test_key};
use commonware_runtime::Runner as _;
use tcp_consensus::{ConsensusDomains, Proposal, Vote};

/// Validator 0 of a 4-validator chain, booted at height 1 with its peers absent; the tests
/// hand the adversary's messages to its handlers as the p2p receive task would.
fn with_node(test: impl FnOnce(&mut Node<crate::p2p::Production>) + Send + 'static) {
    with_node_of(test_genesis_of(4), test)
}

fn with_node_of(genesis_file: crate::genesis::Genesis, test: impl FnOnce(&mut Node<crate::p2p::Production>) + Send + 'static) {
    let home = crate::store::tests::tempdir();
    let genesis = home.join("genesis.json");
    std::fs::write(&genesis, serde_json::to_vec(&genesis_file).unwrap()).unwrap();
    let spec = ChainSpec::load(&genesis).unwrap();
    let local = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let config = NodeConfig {
        name: "v0".into(),
        role: Role::Validator,
        genesis,
        p2p_listen: local(0),
        p2p_address: local(1),
        rpc_listen: local(0),
        metrics_listen: local(0),
        followers: Vec::new(),
        log_level: "info".into(),
        compute: None,
        bridge: None,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let secrets = NodeSecrets { consensus_key: test_key(0), bls_key: tcp_beacon::validator_key::generate(&mut rng).0, beacon_share: None };
    let runtime = commonware_runtime::tokio::Config::new().with_storage_directory(home.join("runtime"));
    let dir = home.clone();
    commonware_runtime::tokio::Runner::new(runtime).start(|context| async move {
        let key = secrets.consensus_key.clone();
        let (p2p_context, p2p_config, p2p_spec) = (context.child("network"), config.clone(), spec.clone());
        let setup = NodeSetup::new(Arc::new(crate::disk::OsDisk), dir, config, spec, secrets, [7; 32]);
        let (mut node, _handle, _events, _sender) = start::<crate::p2p::Production>(context, setup, |bonded| {
            crate::p2p::connect(&p2p_context, &p2p_config, &p2p_spec, &key, bonded)
        })
        .unwrap();
        node.boot(Height(1)).unwrap();
        test(&mut node);
    });
    std::fs::remove_dir_all(home).unwrap();
}

/// Bytes that claim `height` (what `claimed_height` reads) and hash to distinct ids.
/// A well-formed block of about 4 KiB that no validator built (its body matches its roots, so
/// it is held like any body; it is not valid).
fn junk_body(height: u64, tag: u64) -> Vec<u8> {
    static TRANSACTIONS: std::sync::OnceLock<Vec<tcp_state::SignedTransaction>> = std::sync::OnceLock::new();
    let transactions = TRANSACTIONS.get_or_init(|| {
        let key = tcp_state::AccountKey::from_bytes(&[7; 32]).unwrap();
        (0..24)
            .map(|nonce| {
                tcp_state::Transaction {
                    chain_id: tcp_types::ChainId::new("junk").unwrap(),
                    nonce,
                    gas_price: 1,
                    gas_limit: 21_000,
                    action: tcp_state::Action::Transfer { to: Address([9; 20]), amount: 5 },
                }
                .sign(&key)
            })
            .collect()
    });
    let header = Header {
        height: Height(height),
        round: Round(0),
        proposer: ValidatorIndex(0),
        parent: Digest([0; 32]),
        timestamp_ms: tag,
        state_root: Digest([0; 32]),
        roots: crate::block::body_roots(None, &[], transactions),
        previous_signature: None,
        previous_finality: None,
        extra_roots: Vec::new(),
    };
    Block { header, last_commit: None, logs: Vec::new(), transactions: transactions.clone(), dkmp_logs: Vec::new(), releases: Vec::new(), inbox: Vec::new() }.encode()
}

/// A round of height 1 whose proposer is not us, and that proposer.
fn other_proposer(node: &Node<crate::p2p::Production>) -> (Round, ValidatorIndex) {
    (0..64).map(Round).find_map(|r| node.ledger.proposer(Height(1), r).filter(|p| p.0 != 0).map(|p| (r, p))).unwrap()
}

fn signed_proposal(node: &Node<crate::p2p::Production>, signer: u64, height: u64, round: Round, proposer: ValidatorIndex, value: ValueId) -> SignedProposal {
    let proposal = Proposal { height: Height(height), round, value, pol_round: None, proposer };
    ConsensusDomains::new(&node.spec.chain_id).sign_proposal(&test_key(signer), proposal)
}

#[test]
fn a_flood_of_bodies_cannot_evict_the_body_a_proposal_names() {
    with_node(|node| {
        let (round, proposer) = other_proposer(node);
        let body = junk_body(1, u64::MAX);
        let id = block_id(&body).unwrap();
        node.on_proposal(signed_proposal(node, proposer.0 as u64, 1, round, proposer, id)).unwrap();
        let sender = test_key(proposer.0 as u64).public_key();
        node.on_block(sender, body).unwrap();
        assert!(node.bodies.contains_key(&id));
        let held = node.bodies.len(); // and our own block, if we propose round 0
        let attacker = test_key(3).public_key();
        for tag in 0..600 {
            node.on_block(attacker.clone(), junk_body(1 + tag % 3, tag)).unwrap();
        }
        assert!(node.bodies.contains_key(&id), "the proposal's body is still here");
        assert_eq!(node.bodies.len(), held, "no unnamed body was kept");
        assert_eq!(node.unsolicited.len(), 1, "one early body per peer at most");
    });
}

#[test]
fn unsigned_and_copied_proposals_take_no_place_in_the_queue() {
    with_node(|node| {
        // An honest proposal for the next height waits for its height.
        let proposer = ValidatorIndex(2);
        let honest = signed_proposal(node, 2, 2, Round::ZERO, proposer, Digest([1; 32]));
        node.on_proposal(honest.clone()).unwrap();
        for i in 0..2000u32 {
            let claimed = ValidatorIndex(i % 4);
            let value = Digest([(i % 251) as u8; 32]);
            // Signed by validator 3 under another's index, or a stranger's copy.
            let mut forged = signed_proposal(node, 3, 1 + u64::from(i % 3), Round(i), claimed, value);
            if claimed.0 == 3 {
                forged.signature = signed_proposal(node, 1, 1, Round(i), claimed, value).signature;
            }
            node.on_proposal(forged).unwrap();
        }
        assert_eq!(node.pending_proposals.iter().collect::<Vec<_>>(), vec![&honest], "only the authentic proposal is queued");
        // Validator 3 signing proposals as the proposer of every round of the next height
        // (unverifiable until it starts) holds a few places, and none of validator 2's.
        for r in 0..32 {
            for v in 0..2u8 {
                node.on_proposal(signed_proposal(node, 3, 2, Round(r), ValidatorIndex(3), Digest([100 + v; 32]))).unwrap();
            }
        }
        assert!(node.pending_proposals.iter().filter(|p| p.proposal.proposer.0 == 3).count() <= MAX_FUTURE_PROPOSALS_PER_SIGNER);
        let second = signed_proposal(node, 2, 2, Round(1), proposer, Digest([2; 32]));
        node.on_proposal(second.clone()).unwrap();
        assert!(node.pending_proposals.contains(&second));
        // Validator 3 flooding validly signed proposals for far rounds of the next height
        // cannot push out the nearer honest one either.
        for r in 1..500 {
            node.on_proposal(signed_proposal(node, 3, 2, Round(r), ValidatorIndex(3), Digest([r as u8; 32]))).unwrap();
        }
        assert!(node.pending_proposals.contains(&honest));
        assert!(node.pending_proposals.len() <= MAX_PENDING_PROPOSALS);
    });
}

#[test]
fn a_decided_height_without_its_body_waits_for_it_instead_of_stopping_the_node() {
    for durable in [true, false] {
        with_node(move |node| {
            // A valid block of a round we propose, signed by us as a peer would see it.
            // (If we propose round 0, the node built and proposed it at boot.)
            let round = (0..64).map(Round).find(|r| node.ledger.proposer(Height(1), *r) == Some(ValidatorIndex(0))).unwrap();
            if round != Round::ZERO {
                node.build_value(Height(1), round, &mut VecDeque::new()).unwrap();
            }
            let (&id, body) = node.bodies.iter().next().unwrap();
            let body = body.bytes.to_vec();
            if round != Round::ZERO {
                node.on_proposal(signed_proposal(node, 0, 1, round, ValidatorIndex(0), id)).unwrap();
            }
            assert_eq!(node.core.proposal(round).map(|p| p.proposal.value), Some(id));
            node.bodies.clear(); // as if dropped under memory pressure
            if !durable {
                node.store.remove_pending(&id); // as if decided from others' precommits alone
            }
            let domains = ConsensusDomains::new(&node.spec.chain_id);
            let precommit = |signer: u64| {
                let vote = Vote {
                    vote_type: VoteType::Precommit,
                    height: Height(1),
                    round,
                    value: Some(id),
                    validator: ValidatorIndex(signer as u32),
                    extension: bytes::Bytes::new(),
                };
                domains.sign_vote(&test_key(signer), vote)
            };
            for signer in 1..4u64 {
                node.on_vote(precommit(signer)).expect("the node keeps running");
            }
            if durable {
                // Read back from the pending bodies on disk.
                assert_eq!(node.store.height().unwrap(), Height(1));
                return;
            }
            assert!(matches!(&node.awaiting_body, Some((Height(1), v, _)) if *v == id));
            assert_eq!(node.store.height().unwrap(), Height(0));
            // A peer's commit of the height brings the body; the height commits.
            let certificate = CommitCertificate { height: Height(1), round, value: id, precommits: (1..4).map(precommit).collect() };
            node.on_commit(test_key(1).public_key(), certificate, body).unwrap();
            assert_eq!(node.store.height().unwrap(), Height(1));
            assert!(node.awaiting_body.is_none());
        });
    }
}

/// The root chain's inbox as a validator holds it: only consecutive entries from the next one
/// the chain processes; a proposed block's entries must be the next ones of its own view; a
/// block of ours carries only entries held for two intervals; a view that changes under an id
/// (a reorganisation deeper than the confirmation depth) is replaced from there.
#[test]
fn a_block_carries_only_the_root_chain_inbox_entries_this_validator_saw() {
    use tcp_state::bridge::{InboxEntry, InboxKind};
    let mut genesis = test_genesis_of(4);
    genesis.bridge = Some(crate::genesis::BridgeConfig {
        root_chain_id: 31337,
        contract: format!("0x{}", "ab".repeat(20)),
        challenge_period_secs: 3600,
        freeze_period_secs: 7200,
        exit_bond: "100".into(),
        min_deposit: "1".into(),
        confirmation_depth: 0,
        start_block: 0,
    });
    with_node_of(genesis, |node| {
        let entry = |id: u64, amount: u128| InboxEntry { id, kind: InboxKind::Deposit, account: Address([id as u8 + 1; 20]), amount };
        // A gap: nothing is taken.
        node.learn_root_inbox(vec![entry(1, 5)]);
        assert!(node.root_inbox.is_empty());
        node.learn_root_inbox(vec![entry(0, 5), entry(1, 6)]);
        node.learn_root_inbox(vec![entry(0, 5), entry(1, 6), entry(3, 9)]);
        assert_eq!(node.root_inbox.iter().map(|(e, _)| e.id).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(node.inbox_valid(&[]), Ok(()));
        assert_eq!(node.inbox_valid(&[entry(0, 5)]), Ok(()));
        assert_eq!(node.inbox_valid(&[entry(0, 5), entry(1, 6)]), Ok(()));
        assert!(node.inbox_valid(&[entry(0, 7)]).is_err(), "another amount under id 0");
        assert!(node.inbox_valid(&[entry(1, 6)]).is_err(), "not the next entry");
        assert!(node.inbox_valid(&[entry(0, 5), entry(1, 6), entry(2, 1)]).is_err(), "one not seen here");
        // Just learned: not yet in a block of ours; held two intervals: in.
        assert!(node.inbox_for_block().is_empty());
        for (_, at) in node.root_inbox.iter_mut() {
            *at = 0;
        }
        assert_eq!(node.inbox_for_block(), vec![entry(0, 5), entry(1, 6)]);
        // The follower's view changed under id 1: ours follows it from there.
        node.learn_root_inbox(vec![entry(0, 5), entry(1, 8)]);
        assert_eq!(node.root_inbox.iter().map(|(e, _)| *e).collect::<Vec<_>>(), vec![entry(0, 5), entry(1, 8)]);
        assert!(node.inbox_valid(&[entry(0, 5), entry(1, 6)]).is_err());
        // The whole block, executed: entries credited before its transactions.
        let executed = Executed::run(&node.state, &[entry(0, 5)], Vec::new(), tcp_state::BlockEnv { height: 1, time_secs: 0, fee_recipient: Address([1; 20]) }, &BlockOutcome::default(), false).unwrap();
        assert_eq!(executed.state.bridge_account(&Address([1; 20])).balance, 5);
        assert!(Executed::run(&node.state, &[entry(1, 8)], Vec::new(), tcp_state::BlockEnv { height: 1, time_secs: 0, fee_recipient: Address([1; 20]) }, &BlockOutcome::default(), false).is_err());
    });
}

/// On a chain without a bridge, no inbox entry is held and a block carrying one is invalid.
#[test]
fn a_chain_without_a_bridge_takes_no_inbox_entries() {
    use tcp_state::bridge::{InboxEntry, InboxKind};
    with_node(|node| {
        let entry = InboxEntry { id: 0, kind: InboxKind::Deposit, account: Address([1; 20]), amount: 5 };
        node.learn_root_inbox(vec![entry]);
        assert!(node.root_inbox.is_empty());
        assert!(node.inbox_valid(&[entry]).is_err());
        assert!(node.inbox_for_block().is_empty());
    });
}
