//! The checker is only worth something if it can fail: a core with a broken locking rule, and
//! a network with more than f Byzantine validators, must both be reported.

use tcp_consensus::InjectedFault;
use tcp_sim::{Faults, SimConfig, Violation, run};

/// Runs seeds until one breaks agreement; returns that seed.
fn first_agreement_violation(template: &SimConfig, budget: u64) -> Option<u64> {
    (0..budget).find(|&seed| {
        let report = run(SimConfig { seed, ..template.clone() });
        report.violations.iter().any(|v| matches!(v, Violation::Agreement { .. }))
    })
}

#[test]
fn broken_locking_rule_is_caught_as_an_agreement_violation() {
    // The amnesia attacker is the adversary that exploits a missing lock; pin it so the seed
    // budget goes to network schedules rather than to drawing the right behaviour.
    let mut template = SimConfig::new(4, 1, 30, Faults::ALL, 0);
    template.injected_fault = InjectedFault::BrokenLocking;
    template.behaviours = vec![tcp_sim::Behaviour::Amnesia];
    let seed = first_agreement_violation(&template, 300).expect("the checker must catch a broken locking rule within 300 seeds");
    // The same seed with the correct core is safe: the violation is the sabotage's doing.
    let correct = run(SimConfig { seed, injected_fault: InjectedFault::None, ..template.clone() });
    assert!(correct.violations.is_empty(), "seed {seed} must be safe with the correct locking rule: {:?}", correct.violations);
    eprintln!("broken locking caught at seed {seed}");
}

#[test]
fn more_than_f_byzantine_validators_are_caught() {
    // f = 1 for 4 validators; 2 Byzantine break the protocol's assumption.
    let mut template = SimConfig::new(4, 2, 30, Faults::ALL, 0);
    template.behaviours = vec![tcp_sim::Behaviour::Equivocate];
    let seed =
        first_agreement_violation(&template, 100).expect("the checker must report a violation with more than f Byzantine validators");
    eprintln!("more than f Byzantine caught at seed {seed}");
}
