//! Whole-network runs of the node's own code: it survives every fault and adversary the
//! simulator injects, runs replay from their seed, and the liveness checker reports a chain
//! that stops.

use tcp_sim::{Behaviour, Faults, SimConfig, SimReport, run};

fn run_seeds(template: &SimConfig, seeds: std::ops::Range<u64>) -> Vec<SimReport> {
    seeds.map(|seed| run(SimConfig { seed, ..template.clone() })).collect()
}

fn assert_all_ok(reports: &[SimReport], template: &SimConfig) {
    for r in reports {
        assert!(
            r.is_ok(),
            "seed {} failed: {:?} {:?} {:?} {:?} {:?} {:?}\nreplay: {}",
            r.seed,
            r.violations,
            r.liveness_failure,
            r.beacon_failures,
            r.node_failures,
            r.memory_violations,
            r.release_failures,
            SimConfig { seed: r.seed, ..template.clone() }.replay_command()
        );
        assert!(r.heights_decided >= template.heights, "seed {} decided only {}", r.seed, r.heights_decided);
    }
}

#[test]
fn four_validators_one_byzantine_survive_all_faults() {
    let template = SimConfig::new(4, 1, 20, Faults::ALL, 0);
    let reports = run_seeds(&template, 0..12);
    assert_all_ok(&reports, &template);
    // The faults really happened.
    let sum = |f: fn(&SimReport) -> u64| reports.iter().map(f).sum::<u64>();
    assert!(sum(|r| r.crashes) > 0 && sum(|r| r.wal_replays) > 0);
    assert!(sum(|r| r.partitions) > 0);
    let behaviours: std::collections::HashSet<_> = reports.iter().flat_map(|r| r.behaviours.clone()).collect();
    assert!(behaviours.len() >= 4, "only {behaviours:?} ran");
    // The beacon ran under all of it: σ committed at most heights.
    assert!(sum(|r| r.beacon_heights) > 10 * 12, "σ committed at most heights");
}

#[test]
fn every_adversary_is_survived() {
    for behaviour in [
        Behaviour::Silent,
        Behaviour::Equivocate,
        Behaviour::DoubleVote,
        Behaviour::Amnesia,
        Behaviour::Junk,
        Behaviour::Withhold,
        Behaviour::Flood,
        Behaviour::Grind,
        Behaviour::ForgeFinality,
    ] {
        let mut template = SimConfig::new(4, 1, 12, Faults::ALL, 0);
        template.behaviours = vec![behaviour];
        let reports = run_seeds(&template, 0..2);
        assert_all_ok(&reports, &template);
        assert!(reports.iter().all(|r| r.behaviours == vec![behaviour]));
    }
}

#[test]
fn validators_join_and_leave_through_reshares_that_keep_the_group_key() {
    // Partitions and loss stall the chain (and fail ceremonies, extending epochs) through
    // most of the fault window; with crashes it has room to change its set several times.
    let mut template = SimConfig::new(7, 2, 60, "crash,byzantine".parse().unwrap(), 0);
    template.epoch_length = 12;
    template.churn = true;
    let reports = run_seeds(&template, 0..2);
    assert_all_ok(&reports, &template);
    for r in &reports {
        assert!(r.reshares >= 2, "seed {}: only {} reshares", r.seed, r.reshares);
        assert!(!r.group_key_changed);
        // DKMP's group reshares M at the same boundaries, its public key unchanged.
        assert!(r.dkmp_serving && r.dkmp_reshares >= 2, "seed {}: serving {}, {} reshares of M", r.seed, r.dkmp_serving, r.dkmp_reshares);
        assert!(!r.master_key_changed);
    }
}

/// DKMP under churn, crashes and Byzantine members (issue 19, item 7): the simulated compute
/// node's enclave keeps obtaining contract keys from the serving group while one member answers
/// with unusable partials (named each time) and another withholds; every request made while t
/// honest members were up succeeded, every key obtained is on the release ledger, and M's
/// public key never changed (the report's own checks).
#[test]
fn contract_keys_are_released_through_reshares_despite_bad_and_withheld_partials() {
    let mut template = SimConfig::new(7, 2, 45, "crash,byzantine".parse().unwrap(), 0);
    template.epoch_length = 12;
    template.churn = true;
    template.behaviours = vec![Behaviour::BadPartials, Behaviour::Withhold];
    let reports = run_seeds(&template, 0..1);
    assert_all_ok(&reports, &template);
    let r = &reports[0];
    assert!(r.dkmp_reshares >= 2 && !r.master_key_changed, "{} reshares", r.dkmp_reshares);
    assert!(r.dkmp_releases >= 5, "only {} keys obtained", r.dkmp_releases);
    assert!(r.dkmp_bad_answers >= 1, "the member with bad partials was never named");
}

#[test]
fn withholding_shares_changes_neither_liveness_nor_the_randomness_and_costs_the_withholder() {
    let honest = SimConfig::new(4, 1, 40, Faults::NONE, 11);
    let mut withholding = SimConfig { faults: "byzantine".parse().unwrap(), ..honest.clone() };
    withholding.behaviours = vec![Behaviour::Withhold];
    let (a, b) = (run(honest.clone()), run(withholding.clone()));
    assert_all_ok(std::slice::from_ref(&a), &honest);
    assert_all_ok(std::slice::from_ref(&b), &withholding);
    assert_eq!(b.behaviours, vec![Behaviour::Withhold]);
    assert!(a.beacon_trace.len() > 20);
    // σ_h is unique whichever partials recover it: the same randomness at every height.
    let randomness = |r: &SimReport| r.beacon_trace.iter().map(|(h, _, r)| (*h, *r)).collect::<Vec<_>>();
    let common = a.beacon_trace.len().min(b.beacon_trace.len());
    assert_eq!(randomness(&a)[..common], randomness(&b)[..common], "same randomness");
    // A precommit without its partial earns no credit (blocks carry only precommits with a
    // valid partial), so the withholder's weight, and its share of the draws, can only drop.
    let withholder = 3;
    assert!(
        b.proposer_expected[withholder] < a.proposer_expected[withholder],
        "withholding cost nothing: {} vs {}",
        b.proposer_expected[withholder],
        a.proposer_expected[withholder]
    );
}

/// A proposer whose blocks carry φ of another round, σ passed off as φ, or a body that does not
/// match its header is refused by every honest node: with no network fault, its rounds fail
/// (heights decided in later rounds), nothing it forged is committed (the checker verifies every
/// committed header's φ on its own), and the chain goes on.
#[test]
fn forged_finality_is_never_committed() {
    let mut template = SimConfig::new(4, 1, 30, Faults { byzantine: true, ..Faults::NONE }, 0);
    template.behaviours = vec![Behaviour::ForgeFinality];
    let reports = run_seeds(&template, 0..3);
    assert_all_ok(&reports, &template);
    assert!(reports.iter().any(|r| r.max_round > 0), "the forger never proposed: {:?}", reports.iter().map(|r| r.max_round).collect::<Vec<_>>());
    assert!(reports.iter().all(|r| r.finality_checked > 0));
}

#[test]
fn proposer_counts_match_the_weights() {
    // (Seed 1 lands in the test's 1 % tail with the node as host: p = 0.009.)
    let mut cfg = SimConfig::new(4, 0, 600, Faults::NONE, 3);
    cfg.fairness = true;
    let r = run(cfg.clone());
    assert_all_ok(std::slice::from_ref(&r), &cfg);
    let (statistic, dof) = tcp_beacon::fairness::chi_square(&r.proposer_observed, &r.proposer_expected);
    let p = tcp_beacon::fairness::chi_square_p_value(statistic, dof);
    assert!(p >= 0.01, "p = {p}: observed {:?} expected {:?}", r.proposer_observed, r.proposer_expected);
    // The weights really differ (N₀ from 1 to 4 million), and the draws follow them.
    let e = &r.proposer_expected;
    let by_expectation = |a: &usize, b: &usize| e[*a].total_cmp(&e[*b]);
    let (low, high) = ((0..4).min_by(by_expectation).unwrap(), (0..4).max_by(by_expectation).unwrap());
    assert!(e[high] > 1.1 * e[low], "{e:?}");
    assert!(r.proposer_observed[high] > r.proposer_observed[low], "{:?} vs {e:?}", r.proposer_observed);
}

#[test]
fn seven_validators_two_byzantine_survive_all_faults() {
    let template = SimConfig::new(7, 2, 15, Faults::ALL, 0);
    assert_all_ok(&run_seeds(&template, 100..104), &template);
}

#[test]
fn every_fault_kind_alone_is_survived() {
    for faults in ["none", "crash", "partition", "loss", "byzantine"] {
        let template = SimConfig::new(4, 1, 15, faults.parse().unwrap(), 0);
        assert_all_ok(&run_seeds(&template, 0..3), &template);
    }
}

#[test]
fn a_seed_replays_identically() {
    let cfg = SimConfig::new(4, 1, 15, Faults::ALL, 7);
    let (a, b) = (run(cfg.clone()), run(cfg));
    assert_eq!(
        (a.messages_sent, a.heights_decided, a.virtual_time, a.crashes, a.partitions, &a.beacon_trace),
        (b.messages_sent, b.heights_decided, b.virtual_time, b.crashes, b.partitions, &b.beacon_trace)
    );
    let c = run(SimConfig::new(4, 1, 15, Faults::ALL, 8));
    assert_ne!((a.messages_sent, a.virtual_time), (c.messages_sent, c.virtual_time), "different seeds, different runs");
}

#[test]
fn a_halted_chain_is_reported_as_a_liveness_failure() {
    // Two of four validators silent: no quorum is ever possible.
    let mut cfg = SimConfig::new(4, 2, 10, "byzantine".parse().unwrap(), 3);
    cfg.behaviours = vec![Behaviour::Silent];
    let report = run(cfg);
    assert_eq!(report.behaviours, vec![Behaviour::Silent, Behaviour::Silent]);
    assert!(report.violations.is_empty(), "silence is not a safety violation");
    let failure = report.liveness_failure.expect("the checker must report the halt");
    assert!(failure.contains("reached only height 0"), "{failure}");
}

#[test]
fn faults_parse_and_print() {
    assert_eq!("all".parse::<Faults>().unwrap(), Faults::ALL);
    assert_eq!("crash,loss".parse::<Faults>().unwrap().to_string(), "crash,loss");
    assert_eq!("none".parse::<Faults>().unwrap().to_string(), "none");
    assert!("fire".parse::<Faults>().is_err());
}

#[test]
fn validators_crashed_in_the_middle_of_reshares_sign_with_partials_again_in_their_epoch() {
    let mut template = SimConfig::new(7, 2, 30, "crash".parse().unwrap(), 0);
    template.epoch_length = 10;
    template.churn = true;
    template.behaviours = vec![Behaviour::CrashReshare];
    let reports = run_seeds(&template, 0..2);
    assert_all_ok(&reports, &template);
    for r in &reports {
        assert_eq!(r.behaviours, vec![Behaviour::CrashReshare; 2]);
        assert!(r.crashes > 0 && r.reshares > 0, "seed {}: {} crashes, {} reshares", r.seed, r.crashes, r.reshares);
        assert!(r.dkmp_serving && !r.master_key_changed, "seed {}: the master secret's group", r.seed);
    }
}
