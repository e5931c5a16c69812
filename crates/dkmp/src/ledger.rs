//! The SSSG's life on the chain (DESIGN §5.5, "SSSG" and "Master secret"), derived by every node
//! from committed blocks like the beacon's ledger: the first group runs a DKG for the master
//! secret M; at each epoch's plan the next group is drawn ([`select_sssg`]) and the serving
//! group reshares M to it — also when the two overlap or are the same, so old shares become
//! useless — with the master public key unchanged; a reshare that misses its deadline leaves the
//! old group serving another epoch, and the next plan tries again.
//!
//! The ceremonies run on the beacon's engine ([`tcp_beacon::Ceremony`]) as a second instance,
//! under their own namespace (`tcp/dkmp/dkg`), so a beacon dealer log never counts here. Dealer
//! logs reach the ledger as committed transactions ([`GroupLedger::record_log`]); the host checks
//! them before inclusion with [`GroupLedger::check_log`]. M is never rebuilt: the engine moves
//! shares, and keys are threshold signatures ([`crate::derivation`]).

use rand_core::CryptoRng;
use tcp_beacon::dkg::{Ceremony, DkgOutput, LogRejection, SignedLog, Transcript, group_key};
use tcp_beacon::signature::GroupKey;
use tcp_crypto::Ed25519PublicKey;
use tcp_types::{Digest, Height};

use crate::sssg::{Candidate, GroupThreshold, select_sssg};

/// The namespace of the master secret's ceremonies.
pub const DKMP_DKG_NAMESPACE: &[u8] = b"tcp/dkmp/dkg";

/// Why a dealer log is not taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogRefused {
    #[error("no master-secret ceremony is running")]
    NoCeremony,
    #[error(transparent)]
    Rejected(#[from] LogRejection),
}

/// Chain parameters of the group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupParams {
    /// k: members per group (all validators when fewer). Choose 3f + 1.
    pub size: u32,
    /// Heights in which the first group's DKG logs may be committed (and each retry's).
    pub dkg_window: u64,
}

impl GroupParams {
    pub fn check(&self) -> Result<(), String> {
        if self.size == 0 || self.dkg_window == 0 {
            return Err("the SSSG size and DKG window must be positive".into());
        }
        // The ceremony engine's bound: a larger group could never run its DKG.
        if self.size > tcp_beacon::dkg::MAX_PARTICIPANTS {
            return Err(format!("the SSSG size is at most {}", tcp_beacon::dkg::MAX_PARTICIPANTS));
        }
        Ok(())
    }
}

/// A group holding shares of M.
#[derive(Clone, Debug)]
pub struct Group {
    /// The epoch it took over in.
    pub epoch: u64,
    /// Its members, in share order (the ceremony's player order).
    pub members: Vec<Ed25519PublicKey>,
    /// The sharing its members hold (public polynomial, players).
    pub output: DkgOutput,
    /// The ceremony that produced it.
    pub round: u64,
}

impl Group {
    pub fn threshold(&self) -> GroupThreshold {
        GroupThreshold::of(self.members.len() as u32)
    }

    /// M's public key: the same for every group once the first DKG succeeded.
    pub fn master_public_key(&self) -> GroupKey {
        group_key(&self.output)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupEvent {
    CeremonyStarted {
        round: u64,
        reshare: bool,
        players: usize,
    },
    CeremonyCompleted {
        round: u64,
        reshare: bool,
    },
    CeremonyFailed {
        round: u64,
        reshare: bool,
        reason: String,
    },
    /// A group took over (the first after its DKG, later ones at their epoch's start).
    GroupServes {
        epoch: u64,
        round: u64,
    },
    /// No reshare completed for `epoch`: the serving group carries on through it.
    ServiceExtended {
        epoch: u64,
    },
}

/// What the group's ceremonies did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Reshares that completed (each moved M's shares to a new group, M's key unchanged).
    pub reshares: u64,
    /// Ceremonies that failed (a DKG is retried; a failed reshare leaves the old group serving).
    pub failures: u64,
    /// Epochs the serving group carried on into because no reshare completed for them.
    pub extensions: u64,
}

/// The next epoch's candidates, fixed at the plan height and drawn from one height later.
struct ScheduledPlan {
    epoch: u64,
    candidates: Vec<(Ed25519PublicKey, u64)>,
    deadline: Height,
}

struct Active {
    transcript: Transcript,
    /// The first height whose block may carry its logs.
    started: Height,
    deadline: Height,
    /// The epoch the ceremony's group is for.
    epoch: u64,
}

pub struct GroupLedger {
    params: GroupParams,
    next_round: u64,
    /// The first group's members, until its DKG succeeds (a failed DKG is retried by them).
    founders: Option<Vec<Ed25519PublicKey>>,
    serving: Option<Group>,
    /// The group that served before it (its members' release records may still arrive).
    previous: Option<Group>,
    ceremony: Option<Active>,
    /// A reshare that completed, waiting for its epoch.
    ready: Option<Group>,
    /// The last ceremony that completed (its players finalize their shares from it).
    completed: Option<Transcript>,
    /// The last height applied.
    height: Height,
    stats: GroupStats,
    scheduled: Option<ScheduledPlan>,
}

fn keys(candidates: &[(Ed25519PublicKey, u64)], chosen: &[usize]) -> Vec<Ed25519PublicKey> {
    chosen.iter().map(|&i| candidates[i].0.clone()).collect()
}

fn draw(candidates: &[(Ed25519PublicKey, u64)], randomness: &Digest, size: u32) -> Vec<Ed25519PublicKey> {
    let weights: Vec<Candidate> = candidates.iter().map(|(_, stake)| Candidate { stake: *stake }).collect();
    keys(candidates, &select_sssg(&weights, randomness, size))
}

impl GroupLedger {
    /// Before height 1: the first group is drawn from the genesis validators with a
    /// genesis-fixed value (the beacon has no R yet: the same documented bootstrap weakness as
    /// its own first epoch) and starts its DKG, whose logs may be committed in heights
    /// 1..=`dkg_window`.
    pub fn genesis(params: GroupParams, candidates: &[(Ed25519PublicKey, u64)], randomness: &Digest) -> (GroupLedger, Vec<GroupEvent>) {
        assert!(params.check().is_ok() && !candidates.is_empty(), "genesis checks the parameters and has validators");
        let founders = draw(candidates, randomness, params.size);
        let mut ledger = GroupLedger {
            params,
            next_round: 0,
            founders: Some(founders),
            serving: None,
            previous: None,
            ceremony: None,
            ready: None,
            completed: None,
            height: Height(0),
            stats: GroupStats::default(),
            scheduled: None,
        };
        let mut events = Vec::new();
        ledger.start_dkg(Height(1), &mut events);
        (ledger, events)
    }

    fn start_dkg(&mut self, from: Height, events: &mut Vec<GroupEvent>) {
        let founders = self.founders.clone().expect("a DKG runs until the first group serves");
        let round = self.take_round();
        let ceremony =
            Ceremony::in_namespace(DKMP_DKG_NAMESPACE, round, None, &founders, &founders).expect("a drawn group makes a valid ceremony");
        let deadline = Height(from.0 + self.params.dkg_window - 1);
        events.push(GroupEvent::CeremonyStarted { round, reshare: false, players: founders.len() });
        self.ceremony = Some(Active { transcript: Transcript::new(ceremony), started: from, deadline, epoch: 0 });
    }

    fn take_round(&mut self) -> u64 {
        let round = self.next_round;
        self.next_round += 1;
        round
    }

    /// The group serving now (None until the first DKG succeeds).
    pub fn serving(&self) -> Option<&Group> {
        self.serving.as_ref()
    }

    /// The group that served the epoch a request named, if it is the serving group or the
    /// one before it.
    pub fn group_of_epoch(&self, epoch: u64) -> Option<&Group> {
        [self.serving.as_ref(), self.previous.as_ref()].into_iter().flatten().find(|g| g.epoch == epoch)
    }

    /// The ceremony under way: what a member deals or plays in.
    pub fn ceremony(&self) -> Option<&Transcript> {
        self.ceremony.as_ref().map(|c| &c.transcript)
    }

    /// The last height applied ([`GroupLedger::end_block`]).
    pub fn height(&self) -> Height {
        self.height
    }

    /// The height whose block is the last that may carry the running ceremony's logs.
    pub fn ceremony_deadline(&self) -> Option<Height> {
        self.ceremony.as_ref().map(|c| c.deadline)
    }

    /// The committed height by which a dealer closes its dealing (acks or not): halfway through
    /// the ceremony's window, leaving the rest for its log to reach the chain.
    pub fn dealing_closes_at(&self) -> Option<Height> {
        self.ceremony.as_ref().map(|c| Height(c.started.0 + (c.deadline.0 - c.started.0) / 2))
    }

    /// The transcript of the last ceremony that completed.
    pub fn completed_transcript(&self) -> Option<&Transcript> {
        self.completed.as_ref()
    }

    /// A reshare that completed and waits for its epoch.
    pub fn ready(&self) -> Option<&Group> {
        self.ready.as_ref()
    }

    pub fn params(&self) -> GroupParams {
        self.params
    }

    pub fn stats(&self) -> GroupStats {
        self.stats
    }

    /// Whether a dealer log may go into a block: it belongs to the running ceremony and is new.
    pub fn check_log(&self, log: &SignedLog) -> Result<Ed25519PublicKey, LogRefused> {
        match &self.ceremony {
            Some(active) => Ok(active.transcript.check(log)?),
            None => Err(LogRefused::NoCeremony),
        }
    }

    /// A committed dealer-log transaction.
    pub fn record_log(&mut self, log: SignedLog) -> Result<Ed25519PublicKey, LogRefused> {
        match &mut self.ceremony {
            Some(active) => Ok(active.transcript.record(log)?),
            None => Err(LogRefused::NoCeremony),
        }
    }

    /// After the block at `height` is applied: a ceremony whose deadline it is closes. `rng`
    /// drives the engine's randomized batch checks (the verdict does not depend on it).
    pub fn end_block(&mut self, height: Height, rng: &mut impl CryptoRng) -> Vec<GroupEvent> {
        debug_assert!(height > self.height, "blocks are applied in height order");
        self.height = height;
        let mut events = Vec::new();
        if !self.ceremony.as_ref().is_some_and(|c| c.deadline == height) {
            return events;
        }
        let active = self.ceremony.take().expect("checked above");
        let round = active.transcript.ceremony().round();
        let reshare = active.transcript.ceremony().is_reshare();
        match active.transcript.finish(rng) {
            Ok(output) => {
                events.push(GroupEvent::CeremonyCompleted { round, reshare });
                self.completed = Some(active.transcript.clone());
                let members = active.transcript.ceremony().players().to_vec();
                let group = Group { epoch: active.epoch, members, output, round };
                if reshare {
                    self.stats.reshares += 1;
                    debug_assert_eq!(
                        self.serving.as_ref().map(Group::master_public_key),
                        Some(group.master_public_key()),
                        "a reshare keeps M"
                    );
                    self.ready = Some(group);
                } else {
                    self.founders = None;
                    events.push(GroupEvent::GroupServes { epoch: group.epoch, round });
                    self.serving = Some(group);
                }
            }
            Err(e) => {
                self.stats.failures += 1;
                events.push(GroupEvent::CeremonyFailed { round, reshare, reason: e.to_string() });
                if !reshare {
                    self.start_dkg(height.next(), &mut events);
                }
            }
        }
        events
    }

    /// At the plan height of `epoch` (the beacon's schedule): draw its group from the validators
    /// planned for it with R of the plan height, and reshare the serving group's shares to it,
    /// due by `deadline` (the serving epoch's last height). Nothing happens before the first
    /// group serves (its DKG is still running) or while a ceremony runs.
    pub fn plan(
        &mut self,
        epoch: u64,
        candidates: &[(Ed25519PublicKey, u64)],
        randomness: &Digest,
        from: Height,
        deadline: Height,
    ) -> Vec<GroupEvent> {
        let mut events = Vec::new();
        let Some(serving) = &self.serving else { return events };
        if self.ceremony.is_some() || candidates.is_empty() || deadline < from {
            return events;
        }
        let players = draw(candidates, randomness, self.params.size);
        let dealers: Vec<Ed25519PublicKey> = serving.output.players().iter().cloned().collect();
        let previous = serving.output.clone();
        let round = self.take_round();
        match Ceremony::in_namespace(DKMP_DKG_NAMESPACE, round, Some(previous), &dealers, &players) {
            Ok(ceremony) => {
                events.push(GroupEvent::CeremonyStarted { round, reshare: true, players: players.len() });
                self.ready = None;
                self.ceremony = Some(Active { transcript: Transcript::new(ceremony), started: from, deadline, epoch });
            }
            Err(e) => events.push(GroupEvent::CeremonyFailed { round, reshare: true, reason: e.to_string() }),
        }
        events
    }

    /// At the plan height of `epoch`: its candidates (the validators planned for it, with their
    /// stake) are fixed now, from the state after this block, and drawn from at the next height
    /// ([`GroupLedger::draw_scheduled`]) with R of this one. The proposer of this block chose the
    /// transactions that shaped the candidates knowing R of the previous height only: had the
    /// draw used that, it could try transaction sets until the draw favoured it.
    pub fn schedule_plan(&mut self, epoch: u64, candidates: Vec<(Ed25519PublicKey, u64)>, deadline: Height) {
        self.scheduled = Some(ScheduledPlan { epoch, candidates, deadline });
    }

    /// The height after a plan height: draw the scheduled group with `randomness` (R of the plan
    /// height, which this block carries) and start the reshare to it from `from`.
    pub fn draw_scheduled(&mut self, randomness: &Digest, from: Height) -> Vec<GroupEvent> {
        match self.scheduled.take() {
            Some(plan) => self.plan(plan.epoch, &plan.candidates, randomness, from, plan.deadline),
            None => Vec::new(),
        }
    }

    /// At the first height of `epoch`: the group reshared for it takes over, or, if none was,
    /// the serving group carries on.
    pub fn enter_epoch(&mut self, epoch: u64) -> Vec<GroupEvent> {
        if self.serving.is_none() {
            return Vec::new();
        }
        match self.ready.take() {
            Some(group) if group.epoch == epoch => {
                let round = group.round;
                self.previous = self.serving.replace(group);
                vec![GroupEvent::GroupServes { epoch, round }]
            }
            _ => {
                self.stats.extensions += 1;
                vec![GroupEvent::ServiceExtended { epoch }]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derivation::{ContractKeyId, ContractKeys, partial_contract_key, recover_contract_key};
    use commonware_cryptography::Signer as _;
    use commonware_cryptography::bls12381::primitives::group::Share;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng as _;
    use tcp_beacon::dkg::run_local_ceremony;
    use tcp_crypto::Ed25519PrivateKey;
    use tcp_types::ChainId;

    fn validators(n: u8) -> (Vec<Ed25519PrivateKey>, Vec<(Ed25519PublicKey, u64)>) {
        let keys: Vec<Ed25519PrivateKey> = (1..=n).map(|i| tcp_crypto::ed25519_from_secret(&[i; 32])).collect();
        let candidates = keys.iter().enumerate().map(|(i, k)| (k.public_key(), 100 + i as u64)).collect();
        (keys, candidates)
    }

    fn r(seed: u8) -> Digest {
        tcp_crypto::sha256(&[b"plan randomness", &[seed]])
    }

    /// Run the ledger's ceremony among the keys, commit its logs, close it at its deadline.
    fn complete(
        ledger: &mut GroupLedger,
        keys: &[Ed25519PrivateKey],
        previous: &[(Ed25519PublicKey, Share)],
        deadline: Height,
        rng: &mut ChaCha20Rng,
    ) -> (Vec<GroupEvent>, Vec<(Ed25519PublicKey, Share)>) {
        let ceremony = ledger.ceremony().unwrap().ceremony().clone();
        let (logs, _, shares) = run_local_ceremony(&ceremony, keys, previous, rng).unwrap();
        for log in logs {
            assert!(ledger.check_log(&log).is_ok());
            ledger.record_log(log).unwrap();
        }
        (ledger.end_block(deadline, rng), shares)
    }

    fn key_from(group: &Group, shares: &[(Ed25519PublicKey, Share)], id: &ContractKeyId) -> [u8; 32] {
        let answers: Vec<(u32, tcp_beacon::Partial)> =
            shares.iter().map(|(_, share)| (share.index.get(), partial_contract_key(share, id))).collect();
        let (seed, bad) = recover_contract_key(&mut ChaCha20Rng::seed_from_u64(9), group.output.public(), id, &answers).unwrap();
        assert!(bad.is_empty());
        ContractKeys::derive(&seed, id).public_key
    }

    /// A plan fixes its candidates at the plan height and draws at the next with the R given
    /// then: the group follows the later R, not any value known when the candidates were fixed.
    #[test]
    fn a_scheduled_plan_draws_with_the_randomness_of_the_next_height() {
        let (keys, candidates) = validators(10);
        let params = GroupParams { size: 4, dkg_window: 5 };
        let drawn = |later: Digest| {
            let (mut ledger, _) = GroupLedger::genesis(params, &candidates, &r(0));
            let mut rng = ChaCha20Rng::seed_from_u64(1);
            complete(&mut ledger, &keys, &[], Height(5), &mut rng);
            assert!(ledger.draw_scheduled(&later, Height(11)).is_empty(), "nothing scheduled, nothing drawn");
            ledger.schedule_plan(1, candidates.clone(), Height(30));
            assert!(ledger.ceremony().is_none(), "the draw waits for the next height");
            let events = ledger.draw_scheduled(&later, Height(12));
            assert_eq!(events, vec![GroupEvent::CeremonyStarted { round: 1, reshare: true, players: 4 }]);
            ledger.ceremony().unwrap().ceremony().players().to_vec()
        };
        let groups: std::collections::HashSet<Vec<Ed25519PublicKey>> = (1..6).map(|i| drawn(r(100 + i))).collect();
        assert!(groups.len() > 1, "the drawn group depends on the R given at the draw");
    }

    /// The whole life: DKG, a reshare to another group, a reshare to the same group, a missed
    /// reshare — and a contract's key is the same throughout, while old shares stop working.
    #[test]
    fn the_master_key_outlives_every_group_and_old_shares_stop_counting() {
        let (keys, candidates) = validators(10);
        let params = GroupParams { size: 4, dkg_window: 5 };
        let (mut ledger, events) = GroupLedger::genesis(params, &candidates, &r(0));
        assert_eq!(events, vec![GroupEvent::CeremonyStarted { round: 0, reshare: false, players: 4 }]);
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let (events, shares0) = complete(&mut ledger, &keys, &[], Height(5), &mut rng);
        assert_eq!(
            events,
            vec![GroupEvent::CeremonyCompleted { round: 0, reshare: false }, GroupEvent::GroupServes { epoch: 0, round: 0 }]
        );
        let group0 = ledger.serving().unwrap().clone();
        assert_eq!(group0.members.len(), 4);
        assert_eq!(group0.threshold().threshold, 3);
        let master = group0.master_public_key();
        let contract = ContractKeyId { chain_id: ChainId::new("dkmp-test").unwrap(), cid: [7; 32], generation: 0 };
        let key0 = key_from(&group0, &shares0, &contract);

        // Epoch 1: another draw; the serving group reshares to it.
        let events = ledger.plan(1, &candidates, &r(1), Height(50), Height(100));
        assert!(matches!(events[..], [GroupEvent::CeremonyStarted { reshare: true, players: 4, .. }]));
        let (events, shares1) = complete(&mut ledger, &keys, &shares0, Height(100), &mut rng);
        assert!(matches!(events[..], [GroupEvent::CeremonyCompleted { reshare: true, .. }]));
        assert!(ledger.serving().unwrap().round == 0, "the old group serves until the boundary");
        assert!(matches!(ledger.enter_epoch(1)[..], [GroupEvent::GroupServes { epoch: 1, .. }]));
        let group1 = ledger.serving().unwrap().clone();
        assert_eq!(group1.master_public_key(), master, "M's public key is unchanged");
        assert_eq!(key_from(&group1, &shares1, &contract), key0, "the same contract key from the new group");
        // The old group's partials do not verify under the new sharing: mixed in, they never
        // give a key (the shares are new even for members in both groups).
        let mixed: Vec<(u32, tcp_beacon::Partial)> =
            shares0.iter().map(|(_, s)| (s.index.get(), partial_contract_key(s, &contract))).collect();
        assert!(recover_contract_key(&mut rng, group1.output.public(), &contract, &mixed).is_err());

        // Epoch 2: the same group drawn again still reshares (fresh shares, same M).
        let same: Vec<(Ed25519PublicKey, u64)> = candidates.iter().filter(|(k, _)| group1.members.contains(k)).cloned().collect();
        ledger.plan(2, &same, &r(2), Height(150), Height(200));
        let (_, shares2) = complete(&mut ledger, &keys, &shares1, Height(200), &mut rng);
        ledger.enter_epoch(2);
        let group2 = ledger.serving().unwrap().clone();
        assert_eq!(group2.members, group1.members);
        assert_ne!(shares2[0].1.private, shares1[0].1.private, "new shares");
        assert_eq!(key_from(&group2, &shares2, &contract), key0);

        // Epoch 3: the reshare gets no logs before its deadline: it fails, the group serves on.
        ledger.plan(3, &candidates, &r(3), Height(250), Height(300));
        let events = ledger.end_block(Height(300), &mut rng);
        assert!(matches!(events[..], [GroupEvent::CeremonyFailed { reshare: true, .. }]));
        assert_eq!(ledger.enter_epoch(3), vec![GroupEvent::ServiceExtended { epoch: 3 }]);
        assert_eq!(ledger.serving().unwrap().round, group2.round);
        assert_eq!(key_from(ledger.serving().unwrap(), &shares2, &contract), key0, "the extended group still answers");
    }

    #[test]
    fn group_parameters_are_bounded_by_what_the_engine_can_run() {
        assert!(GroupParams { size: 0, dkg_window: 5 }.check().is_err());
        assert!(GroupParams { size: 4, dkg_window: 0 }.check().is_err());
        assert!(GroupParams { size: tcp_beacon::dkg::MAX_PARTICIPANTS + 1, dkg_window: 5 }.check().is_err());
        assert!(GroupParams { size: tcp_beacon::dkg::MAX_PARTICIPANTS, dkg_window: 5 }.check().is_ok());
    }

    #[test]
    fn a_failed_dkg_is_retried_by_the_same_group_and_nothing_serves_meanwhile() {
        let (keys, candidates) = validators(4);
        let (mut ledger, _) = GroupLedger::genesis(GroupParams { size: 7, dkg_window: 3 }, &candidates, &r(0));
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let events = ledger.end_block(Height(3), &mut rng);
        assert!(matches!(
            events[..],
            [
                GroupEvent::CeremonyFailed { round: 0, reshare: false, .. },
                GroupEvent::CeremonyStarted { round: 1, reshare: false, players: 4 }
            ]
        ));
        assert!(ledger.serving().is_none());
        assert!(ledger.plan(1, &candidates, &r(1), Height(4), Height(10)).is_empty(), "no reshare before a group serves");
        assert!(ledger.enter_epoch(1).is_empty());
        let (events, _) = complete(&mut ledger, &keys, &[], Height(6), &mut rng);
        assert!(matches!(events[..], [GroupEvent::CeremonyCompleted { round: 1, .. }, GroupEvent::GroupServes { epoch: 0, round: 1 }]));
        assert_eq!(ledger.serving().unwrap().members.len(), 4, "all validators when fewer than k");
    }

    /// One engine, two instances: a dealer log of the beacon's ceremony (same round, same
    /// participants) does not count in the master secret's.
    #[test]
    fn a_beacon_dealer_log_does_not_count_in_a_dkmp_ceremony() {
        let (keys, candidates) = validators(4);
        let (ledger, _) = GroupLedger::genesis(GroupParams { size: 4, dkg_window: 3 }, &candidates, &r(0));
        let players = ledger.ceremony().unwrap().ceremony().players().to_vec();
        let beacon = Ceremony::new(0, None, &players, &players).unwrap();
        let (logs, _, _) = run_local_ceremony(&beacon, &keys, &[], &mut ChaCha20Rng::seed_from_u64(3)).unwrap();
        for log in logs {
            assert!(ledger.check_log(&log).is_err());
        }
    }
}
