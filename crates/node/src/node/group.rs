//! DKMP's secret-share group on the live network (whitepaper §4.3, DESIGN §5.5; issue 19,
//! items 2–3): every node runs `tcp_dkmp::GroupLedger` from committed blocks beside the beacon's
//! ledger — the first group's DKG, each epoch's group drawn at the beacon's plan height and
//! reshared to at its end, a failed reshare leaving the old group serving. Members take part
//! through the same participant the beacon uses ([`CeremonyKeys`], shares under `<home>/dkmp`),
//! their messages travel as [`Wire::Dkmp`], and dealer logs go on chain in the blocks'
//! master-secret section (`crate::block::DKMP_LOGS_ROOT`). Shares are never combined: the
//! engine moves them, and contract keys are threshold signatures (`tcp_dkmp::derivation`).

use super::*;
use tcp_dkmp::{GroupEvent, GroupLedger};

/// The group ledger before height 1: the first group drawn from the genesis validators (their
/// genesis bonds as stake) with a value fixed by the chain id (the beacon has no R yet), its DKG
/// due in the first `sssg_dkg_window` heights.
pub fn genesis_group(spec: &ChainSpec) -> GroupLedger {
    let candidates: Vec<(Ed25519PublicKey, u64)> = spec.validators.iter().map(|v| (v.key.clone(), v.coin_base)).collect();
    let randomness = tcp_crypto::sha256(&[b"tcp/dkmp/genesis", spec.chain_id.as_str().as_bytes()]);
    GroupLedger::genesis(spec.params().group(), &candidates, &randomness).0
}

/// The group ledger after block `height`, which the beacon ledger applied just before:
/// `planned` is the epoch the beacon planned at this height (its `plan_due` before the block),
/// `beacon_events` what the block did to it. The block's master-secret logs are recorded, a
/// ceremony due at this height closes, an epoch that starts takes its group; at the plan height
/// the planned validators are fixed as the next group's candidates, and at the height after it
/// the group is drawn from them with R of the plan height (σ of it is carried by this block;
/// the plan block's proposer could not know it) and the serving group reshares to it by the
/// epoch's end — also when the two groups are the same. The same at replay and live, so every
/// node derives the same group.
pub fn advance_group(
    group: &mut GroupLedger,
    beacon: &Ledger,
    height: Height,
    block: &Block,
    planned: Option<u64>,
    beacon_events: &[LedgerEvent],
    rng: &mut impl rand_core::CryptoRng,
) -> Vec<GroupEvent> {
    for log in &block.dkmp_logs {
        // Checked against the running ceremony before the block was accepted; a duplicate
        // that a faulty host let through changes nothing, on every node alike.
        let _ = group.record_log(log.clone());
    }
    let mut events = group.end_block(height, rng);
    for event in beacon_events {
        if let LedgerEvent::EpochStarted { epoch, .. } = event {
            events.extend(group.enter_epoch(*epoch));
        }
    }
    // A plan scheduled at the previous height: R of that height is known from this block on.
    if let Some(randomness) = beacon.randomness(Height(height.0 - 1)) {
        events.extend(group.draw_scheduled(&randomness, height.next()));
    }
    if let (Some(epoch), Some(members)) = (planned, beacon.planned()) {
        let candidates: Vec<(Ed25519PublicKey, u64)> = members.iter().map(|m| (m.key.clone(), m.coin_base)).collect();
        group.schedule_plan(epoch, candidates, beacon.epoch_end());
    }
    events
}

/// Whether a block's master-secret logs may be committed on `group`: each belongs to the
/// running ceremony, is signed by one of its dealers, and is new (in the chain and in the block).
pub fn group_logs_valid(group: &GroupLedger, logs: &[SignedLog]) -> Result<(), String> {
    if logs.is_empty() {
        return Ok(());
    }
    if logs.len() > tcp_beacon::ledger::MAX_LOGS_PER_BLOCK {
        return Err(format!("{} master-secret logs", logs.len()));
    }
    let transcript = group.ceremony().ok_or("master-secret logs while no ceremony runs")?;
    let mut dealers = std::collections::HashSet::new();
    for log in logs {
        let dealer = transcript.check(log).map_err(|e| format!("master-secret log: {e}"))?;
        if !dealers.insert(dealer) {
            return Err("master-secret log: two logs of one dealer in the block".into());
        }
    }
    Ok(())
}

/// Release records of one member a block carries.
pub const MAX_RELEASES_PER_MEMBER_PER_BLOCK: usize = 64;

/// Why one release record may not go into a block at this height, cheapest check first: its
/// member served the epoch the request named (the serving group or the one before); the
/// request's enclave is registered on the state and the record says of it what the state says
/// (compute node, identity, TCB) — so no member records a release to an enclave that does not
/// exist, or hides one behind other facts; that member has not recorded this request yet and
/// has room in the block; then both signatures, for this chain. `seen` holds the (request,
/// member) pairs already taken for the block.
pub fn release_record_refusal(
    group: &GroupLedger,
    state: &AccountState,
    chain: &tcp_types::ChainId,
    record: &tcp_dkmp::ReleaseRecord,
    seen: &mut std::collections::HashSet<(Digest, Ed25519PublicKey)>,
) -> Option<String> {
    let request = &record.request.request;
    let Some(served) = group.group_of_epoch(request.epoch) else {
        return Some(format!("a release record for epoch {}, whose group no longer serves", request.epoch));
    };
    if !served.members.contains(&record.member) {
        return Some("a release record by a validator outside the request's group".into());
    }
    let enclave_key: [u8; 32] = commonware_codec::Encode::encode(&request.enclave_key).as_ref().try_into().expect("32 bytes");
    let Some(enclave) = state.enclave(&enclave_key) else {
        return Some("a release record for an enclave that is not registered".into());
    };
    if tcp_dkmp::ReleasedTo::from(&enclave.record) != record.released_to {
        return Some("a release record whose enclave facts are not the state's".into());
    }
    let digest = request.digest();
    if state.release_recorded_by(&digest.0, &record.member) || seen.contains(&(digest, record.member.clone())) {
        return Some("a release record already recorded".into());
    }
    if seen.iter().filter(|(_, m)| *m == record.member).count() >= MAX_RELEASES_PER_MEMBER_PER_BLOCK {
        return Some("more release records of one member than a block takes".into());
    }
    if !record.verify(chain) {
        return Some(FORGED_RELEASE_RECORD.into());
    }
    seen.insert((digest, record.member.clone()));
    None
}

/// The refusal of a record whose signatures do not verify (a peer that gossips one is blocked).
pub const FORGED_RELEASE_RECORD: &str = "a release record's signatures do not verify";

/// A block's release records are each admissible ([`release_record_refusal`]) and at most
/// `MAX_RELEASES_PER_BLOCK`.
pub fn releases_valid(group: &GroupLedger, state: &AccountState, chain: &tcp_types::ChainId, records: &[tcp_dkmp::ReleaseRecord]) -> Result<(), String> {
    if records.len() > crate::block::MAX_RELEASES_PER_BLOCK {
        return Err(format!("{} release records", records.len()));
    }
    let mut seen = std::collections::HashSet::new();
    for record in records {
        if let Some(why) = release_record_refusal(group, state, chain, record, &mut seen) {
            return Err(why);
        }
    }
    Ok(())
}

impl<H: Host> Node<H> {
    /// Join the group's ceremony in progress, and its periodic work.
    pub(super) fn run_group_ceremony(&mut self) {
        let mut out = match self.dkmp_keys.join(&self.group, &mut self.rng) {
            Ok(out) => out,
            Err(e) => {
                tracing::error!(node = %self.name, error = %e, "cannot take part in the master-secret ceremony");
                Vec::new()
            }
        };
        out.extend(self.dkmp_keys.tick(&self.group, &mut self.pending_dkmp_logs));
        self.send_ceremony(out, true);
    }

    pub(super) fn on_group_event(&mut self, event: GroupEvent) {
        match event {
            GroupEvent::CeremonyStarted { round, reshare, players } => {
                tracing::info!(node = %self.name, round, reshare, players, "master-secret ceremony started");
            }
            GroupEvent::CeremonyCompleted { round, reshare } => {
                tracing::info!(node = %self.name, round, reshare, "master-secret ceremony completed");
                match self.dkmp_keys.on_completed(&self.group, round, &mut self.rng) {
                    Ok(true) => tracing::info!(node = %self.name, round, "our share of the master secret is stored"),
                    Ok(false) => {}
                    Err(e) => tracing::error!(node = %self.name, round, error = %e, "could not finalize our share of the master secret"),
                }
            }
            GroupEvent::CeremonyFailed { round, reshare, reason } => {
                tracing::warn!(node = %self.name, round, reshare, reason, "master-secret ceremony failed");
            }
            GroupEvent::GroupServes { epoch, round } => {
                let members = self.group.serving().map_or(0, |g| g.members.len());
                tracing::info!(node = %self.name, epoch, round, members, "a secret-share group serves");
            }
            GroupEvent::ServiceExtended { epoch } => {
                tracing::warn!(node = %self.name, epoch, "no reshare completed for the epoch: the serving group carries on");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::Signer as _;
    use rand_core::SeedableRng as _;

    /// A block's master-secret logs: each of the running ceremony, signed by one of its dealers,
    /// not on chain yet, and one per dealer within the block.
    #[test]
    fn a_blocks_master_secret_logs_must_be_new_distinct_and_of_the_running_ceremony() {
        let keys: Vec<_> = (0..4).map(tcp_crypto::insecure_ed25519_from_seed).collect();
        let candidates: Vec<_> = keys.iter().map(|k| (k.public_key(), 1u64)).collect();
        let params = tcp_dkmp::GroupParams { size: 4, dkg_window: 5 };
        let (mut group, _) = GroupLedger::genesis(params, &candidates, &tcp_crypto::sha256(&[b"test"]));
        let ceremony = group.ceremony().unwrap().ceremony().clone();
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
        let (logs, _, _) = tcp_beacon::dkg::run_local_ceremony(&ceremony, &keys, &[], &mut rng).unwrap();
        assert_eq!(group_logs_valid(&group, &logs[..2]), Ok(()));
        assert!(group_logs_valid(&group, &[logs[0].clone(), logs[0].clone()]).unwrap_err().contains("two logs of one dealer"));
        // A beacon ceremony's log (another namespace) does not count here.
        let set: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
        let beacon = tcp_beacon::Ceremony::new(0, None, &set, &set).unwrap();
        let (beacon_logs, _, _) = tcp_beacon::dkg::run_local_ceremony(&beacon, &keys, &[], &mut rng).unwrap();
        assert!(group_logs_valid(&group, &beacon_logs[..1]).is_err());
        // Once on chain, a log cannot come again.
        group.record_log(logs[0].clone()).unwrap();
        assert!(group_logs_valid(&group, &logs[..1]).is_err());
        assert_eq!(group_logs_valid(&group, &logs[1..]), Ok(()));
        // No logs is always fine; logs with no ceremony running never are.
        assert_eq!(group_logs_valid(&group, &[]), Ok(()));
        for log in &logs[1..] {
            group.record_log(log.clone()).unwrap();
        }
        group.end_block(Height(5), &mut rng);
        assert!(group.serving().is_some() && group.ceremony().is_none());
        assert!(group_logs_valid(&group, &logs[..1]).unwrap_err().contains("no ceremony"));

        // Release records: only by a member of the request's group, and only for an enclave the
        // state holds (a member cannot fill the ledger with releases to enclaves it made up).
        let chain = tcp_types::ChainId::new("test").unwrap();
        let config = tcp_state::StateConfig { chain_id: chain.clone(), min_gas_price: 1, staking: Default::default(), enclaves: None };
        let state = AccountState::genesis(config, &[]).unwrap();
        let made_up = tcp_crypto::ed25519_from_secret(&[0xee; 32]);
        let request = tcp_dkmp::KeyRequest {
            key: tcp_dkmp::ContractKeyId { chain_id: chain.clone(), cid: [1; 32], generation: 0 },
            epoch: group.serving().unwrap().epoch,
            purpose: tcp_dkmp::KeyPurpose::Execute,
            enclave_key: made_up.public_key(),
            answer_key: [2; 32],
            nonce: [3; 16],
        }
        .sign(&made_up);
        let to = tcp_dkmp::ReleasedTo { operator: [4; 20], measurement: [5; 32], tcb_rank: 0, tcb_evaluation_data_number: 1 };
        let by_member = tcp_dkmp::ReleaseRecord::sign(request.clone(), to.clone(), &keys[0]);
        let by_outsider = tcp_dkmp::ReleaseRecord::sign(request, to, &tcp_crypto::insecure_ed25519_from_seed(9));
        let refusal = |r| release_record_refusal(&group, &state, &chain, r, &mut std::collections::HashSet::new()).unwrap_or_default();
        assert!(refusal(&by_outsider).contains("outside the request's group"));
        assert!(refusal(&by_member).contains("not registered"), "{}", refusal(&by_member));
        assert!(releases_valid(&group, &state, &chain, &[by_member]).is_err());
        assert_eq!(releases_valid(&group, &state, &chain, &[]), Ok(()));
    }
}
