//! The observer that sees every decision, signed message and piece of evidence of the run and
//! reports what a correct Tendermint must never do.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use tcp_consensus::{CommitCertificate, ConsensusDomains, ConsensusMessage, Evidence, PrecommitExtension, ValidatorSet, ValueId, VoteType};
use tcp_types::{Height, Round};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    Agreement { height: Height, first: (usize, ValueId), second: (usize, ValueId) },
    Validity { node: usize, height: Height, value: ValueId },
    DoubleSign { node: usize, height: Height, round: Round, kind: &'static str },
    Certificate { node: usize, height: Height, reason: String },
    FalseEvidence { reporter: usize, accused: usize, reason: String },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Agreement { height, first, second } => write!(
                f,
                "agreement: at height {height} node {} decided {:?} but node {} decided {:?}",
                first.0, first.1, second.0, second.1
            ),
            Violation::Validity { node, height, value } => {
                write!(f, "validity: node {node} decided invalid value {value:?} at height {height}")
            }
            Violation::DoubleSign { node, height, round, kind } => {
                write!(f, "double sign: honest node {node} signed two different {kind}s at height {height} round {round}")
            }
            Violation::Certificate { node, height, reason } => {
                write!(f, "certificate: node {node}'s certificate for height {height} is invalid: {reason}")
            }
            Violation::FalseEvidence { reporter, accused, reason } => {
                write!(f, "evidence: node {reporter} accused honest node {accused}: {reason}")
            }
        }
    }
}

pub struct Checker {
    honest: Vec<bool>,
    domains: ConsensusDomains,
    decisions: BTreeMap<Height, (usize, ValueId)>,
    /// Heights each node decided, in order (checked to be consecutive).
    pub decided: Vec<u64>,
    signed: HashMap<(usize, Height, Round, u8), Option<ValueId>>,
    pub violations: Vec<Violation>,
    pub evidence_seen: u64,
}

impl Checker {
    pub fn new(honest: Vec<bool>, domains: ConsensusDomains) -> Self {
        let n = honest.len();
        Checker {
            honest,
            domains,
            decisions: BTreeMap::new(),
            decided: vec![0; n],
            signed: HashMap::new(),
            violations: Vec::new(),
            evidence_seen: 0,
        }
    }

    pub fn is_honest(&self, node: usize) -> bool {
        self.honest[node]
    }

    /// Every message a node sends or relays passes here, attributed to the node that signed it;
    /// two different ones from an honest signer for the same slot is a double sign (replaying
    /// after a crash re-sends identical ones, which is fine).
    pub fn sent(&mut self, node: usize, message: &ConsensusMessage) {
        if !self.honest.get(node).copied().unwrap_or(false) {
            return;
        }
        let (h, r, kind, value) = match message {
            ConsensusMessage::Proposal(p) => (p.proposal.height, p.proposal.round, 2u8, Some(p.proposal.value)),
            ConsensusMessage::Vote(v) => {
                (v.vote.height, v.vote.round, if v.vote.vote_type == VoteType::Prevote { 0 } else { 1 }, v.vote.value)
            }
        };
        match self.signed.insert((node, h, r, kind), value) {
            Some(previous) if previous != value => {
                let kind = ["prevote", "precommit", "proposal"][kind as usize];
                self.violations.push(Violation::DoubleSign { node, height: h, round: r, kind });
            }
            _ => {}
        }
    }

    /// A node decided: checks the decision against the others, the block's validity and the
    /// certificate under the height's set and precommit extension.
    #[allow(clippy::too_many_arguments)] // one decision's facts; grouping them would only rename them
    pub fn decided(
        &mut self,
        node: usize,
        height: Height,
        value: ValueId,
        certificate: &CommitCertificate,
        body_valid: bool,
        validators: &ValidatorSet,
        extension: &dyn PrecommitExtension,
    ) {
        if !self.honest[node] {
            return;
        }
        assert_eq!(self.decided[node] + 1, height.0, "host decided heights out of order");
        self.decided[node] = height.0;
        if let Err(e) = certificate.verify(&self.domains, validators, extension) {
            self.violations.push(Violation::Certificate { node, height, reason: e.to_string() });
        }
        if certificate.value != value || certificate.height != height {
            self.violations.push(Violation::Certificate { node, height, reason: "certifies another value or height".into() });
        }
        if !body_valid {
            self.violations.push(Violation::Validity { node, height, value });
        }
        match self.decisions.get(&height) {
            None => {
                self.decisions.insert(height, (node, value));
            }
            Some(&(first, v)) if v != value => {
                self.violations.push(Violation::Agreement { height, first: (first, v), second: (node, value) });
            }
            Some(_) => {}
        }
    }

    /// Evidence an honest node produced against `accused` (the node behind the offender's index).
    pub fn evidence(&mut self, reporter: usize, accused: Option<usize>, evidence: &Evidence, validators: &ValidatorSet) {
        if !self.honest[reporter] {
            return;
        }
        self.evidence_seen += 1;
        let check = evidence.verify(&self.domains, validators);
        let accused = accused.unwrap_or(usize::MAX);
        if self.honest.get(accused).copied().unwrap_or(true) || check.is_err() {
            let reason = check.err().map_or_else(|| "the accused is honest".to_string(), |e| e.to_string());
            self.violations.push(Violation::FalseEvidence { reporter, accused, reason });
        }
    }

    pub fn min_honest_height(&self) -> u64 {
        self.decided.iter().zip(&self.honest).filter(|(_, h)| **h).map(|(d, _)| *d).min().unwrap_or(0)
    }

    pub fn max_honest_height(&self) -> u64 {
        self.decided.iter().zip(&self.honest).filter(|(_, h)| **h).map(|(d, _)| *d).max().unwrap_or(0)
    }
}
