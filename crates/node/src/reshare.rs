//! This node's part in the ceremonies that run on the live network — the beacon key's reshares
//! at validator-set changes (DESIGN §5.2) and DKMP's master secret, its first DKG and its
//! reshare to each epoch's group (§5.5): one engine, two instances ([`CeremonySchedule`] is
//! what each reads from its ledger). Dealing from its current share (or fresh, in a DKG),
//! accepting dealings as a player, getting its signed log on chain, and finalizing its new share
//! once the ledger completes the ceremony. Messages go point to point over the authenticated, encrypted p2p
//! channel (dealings carry secret shares); logs are gossiped so any proposer can include them.
//!
//! Durable: the dealer's seed is written (0600) before any dealing leaves, so a restarted
//! dealer re-deals identically instead of equivocating; every share is written (0600) as soon
//! as it is finalized, under the ceremony round it belongs to. A player's accepted dealings are
//! written (0600, `player-<round>`) before its ack leaves, so a player restarted mid-ceremony
//! resumes with every dealing it acked and finalizes its share like the others — also when the
//! ceremony completed while it was down. Every file is written atomically (temporary file,
//! link or rename, directory synced).

use crate::disk::Disk;
use commonware_codec::{DecodeExt as _, Encode as _};
use commonware_cryptography::Signer as _;
use rand_core::CryptoRng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tcp_beacon::dkg::{AcceptedDealing, BeaconShare, DkgMessage, LogRejection, Transcript};
use tcp_beacon::{DealerSession, Ledger, PlayerSession, SignedLog};
use tcp_dkmp::GroupLedger;
use tcp_types::Height;
use tcp_crypto::{Ed25519PrivateKey, Ed25519PublicKey};
use zeroize::Zeroizing;

/// Shares kept besides the one in force (the sharing dealers deal from): the newest two — the
/// one in force and the one waiting for its epoch, or a reshare whose epoch was extended away.
/// The one in force is never dropped, however many newer ceremonies completed meanwhile.
const SHARES_KEPT: usize = 2;
/// Dealer logs held for proposing.
pub const MAX_PENDING_LOGS: usize = 128;

/// Messages to send: to one peer, or to everyone.
pub enum Outgoing {
    To(Ed25519PublicKey, DkgMessage),
    All(DkgMessage),
}

/// What a ceremony's participant reads from the ledger that runs it.
pub trait CeremonySchedule {
    /// The ceremony under way, with the logs committed so far.
    fn running(&self) -> Option<&Transcript>;
    /// The last ceremony that completed (players finalize their shares from it).
    fn completed(&self) -> Option<&Transcript>;
    /// The last committed height.
    fn committed(&self) -> Height;
    /// The committed height by which a dealer closes its dealing.
    fn dealing_closes_at(&self) -> Option<Height>;
    /// The last height whose block may carry the running ceremony's logs.
    fn deadline(&self) -> Option<Height>;
    /// The round of the sharing the running ceremony's dealers deal from (none in a DKG).
    fn dealing_from(&self) -> Option<u64>;
    /// Whether this node deals in a fresh DKG (the beacon's first ran in `tcpchain init`).
    fn live_dkg(&self) -> bool;
}

impl CeremonySchedule for Ledger {
    fn running(&self) -> Option<&Transcript> {
        self.transcript()
    }
    fn completed(&self) -> Option<&Transcript> {
        self.completed_transcript()
    }
    fn committed(&self) -> Height {
        self.height()
    }
    fn dealing_closes_at(&self) -> Option<Height> {
        Ledger::dealing_closes_at(self)
    }
    fn deadline(&self) -> Option<Height> {
        self.ceremony_deadline()
    }
    fn dealing_from(&self) -> Option<u64> {
        self.output_round(self.height().next())
    }
    fn live_dkg(&self) -> bool {
        false
    }
}

impl CeremonySchedule for GroupLedger {
    fn running(&self) -> Option<&Transcript> {
        self.ceremony()
    }
    fn completed(&self) -> Option<&Transcript> {
        self.completed_transcript()
    }
    fn committed(&self) -> Height {
        self.height()
    }
    fn dealing_closes_at(&self) -> Option<Height> {
        GroupLedger::dealing_closes_at(self)
    }
    fn deadline(&self) -> Option<Height> {
        self.ceremony_deadline()
    }
    fn dealing_from(&self) -> Option<u64> {
        self.serving().map(|g| g.round)
    }
    fn live_dkg(&self) -> bool {
        true
    }
}

pub struct CeremonyKeys {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    /// What the shares are of, for logs ("beacon", "master secret").
    label: &'static str,
    key: Ed25519PrivateKey,
    me: Ed25519PublicKey,
    shares: BTreeMap<u64, BeaconShare>,
    dealer: Option<(u64, DealerSession)>,
    player: Option<(u64, PlayerSession)>,
    /// Dealings of the player session already on disk (an ack leaves only once it is).
    persisted_dealings: usize,
    /// Our signed log of the ceremony in progress, until it is on chain.
    my_log: Option<(u64, SignedLog)>,
    /// Ceremony rounds this process already joined (a dealer deals once per round).
    joined: Option<u64>,
}

impl CeremonyKeys {
    /// The shares on disk (`<home>/<dir>/share-<round>`) plus the genesis share from the node
    /// key file (the beacon's).
    pub fn load(
        disk: Arc<dyn Disk>,
        home: &Path,
        dir: &str,
        label: &'static str,
        key: Ed25519PrivateKey,
        genesis_share: Option<(u64, BeaconShare)>,
    ) -> Result<CeremonyKeys, String> {
        let dir = home.join(dir);
        let mut shares = BTreeMap::new();
        if let Some((round, share)) = genesis_share {
            shares.insert(round, share);
        }
        for name in disk.list(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let Some(round) = name.strip_prefix("share-").and_then(|r| r.parse::<u64>().ok()) else { continue };
            let path = dir.join(&name);
            let bytes = disk
                .read_private(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .ok_or_else(|| format!("{}: vanished while it was read", path.display()))?;
            let share = BeaconShare::decode(commonware_codec::Copying(&bytes[..])).map_err(|e| format!("{}: {e}", path.display()))?;
            shares.insert(round, share);
        }
        // All of them: what is on disk was pruned against the ledger when written, and the one
        // in force may be older than the newest two.
        let me = key.public_key();
        Ok(CeremonyKeys { disk, dir, label, key, me, shares, dealer: None, player: None, persisted_dealings: 0, my_log: None, joined: None })
    }

    /// The consensus key the ceremonies' messages are signed with (a group member also signs
    /// its key-request answers with it).
    pub fn signing_key(&self) -> &Ed25519PrivateKey {
        &self.key
    }

    /// Our share of the output of ceremony `round`.
    pub fn share(&self, round: u64) -> Option<BeaconShare> {
        self.shares.get(&round).cloned()
    }

    fn ensure_dir(&self) -> Result<(), String> {
        self.disk.create_dir(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))
    }

    fn read_private(&self, path: &Path) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
        self.disk.read_private(path).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn write_private(&self, path: &Path, bytes: &[u8], replace: bool) -> Result<(), String> {
        self.ensure_dir()?;
        self.disk.write_private(path, bytes, replace).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The dealer seed of `round`: read back after a restart, else drawn and written first.
    fn dealer_seed(&self, round: u64, rng: &mut impl CryptoRng) -> Result<[u8; 32], String> {
        let path = self.dir.join(format!("dealer-seed-{round}"));
        if let Some(bytes) = self.read_private(&path)? {
            return bytes.as_slice().try_into().map_err(|_| format!("{}: not a 32-byte seed", path.display()));
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut seed[..]);
        self.write_private(&path, &seed[..], false)?;
        Ok(*seed)
    }

    /// Join the ceremony in progress (once per round): deal if we are a dealer, listen as a
    /// player if we are one. Returns the dealings to send.
    pub fn join(&mut self, ledger: &impl CeremonySchedule, rng: &mut impl CryptoRng) -> Result<Vec<Outgoing>, String> {
        let Some(ceremony) = ledger.running().map(|t| t.ceremony().clone()) else { return Ok(Vec::new()) };
        // The beacon's bootstrap DKG ran in `tcpchain init`; only live ceremonies are joined.
        if !ceremony.is_reshare() && !ledger.live_dkg() {
            return Ok(Vec::new());
        }
        let label = self.label;
        let round = ceremony.round();
        if self.joined == Some(round) {
            return Ok(Vec::new());
        }
        // Read before joining, so that a failure is retried (and reported) at the next height.
        let accepted = if ceremony.is_player(&self.me) { self.read_dealings(round)? } else { Vec::new() };
        self.joined = Some(round);
        self.dealer = None;
        self.player = None;
        self.my_log = None;
        if ceremony.is_player(&self.me) {
            self.persisted_dealings = accepted.len();
            if !accepted.is_empty() {
                tracing::info!(round, dealings = accepted.len(), label, "resuming a ceremony with the dealings accepted before a restart");
            }
            self.player = Some((round, PlayerSession::resume(&ceremony, self.key.clone(), accepted).map_err(|e| e.to_string())?));
        }
        let on_chain = ledger.running().is_some_and(|t| t.has_log(&self.me));
        if ceremony.is_dealer(&self.me) && !on_chain {
            let previous = if ceremony.is_reshare() {
                match ledger.dealing_from().and_then(|r| self.share(r)) {
                    Some(share) => Some(share),
                    None => return Err(format!("cannot deal in {label} reshare {round}: no share of the current sharing")),
                }
            } else {
                None
            };
            let seed = Zeroizing::new(self.dealer_seed(round, rng)?);
            let dealer = DealerSession::start(&ceremony, self.key.clone(), previous, *seed).map_err(|e| e.to_string())?;
            self.dealer = Some((round, dealer));
            tracing::info!(round, players = ceremony.players().len(), reshare = ceremony.is_reshare(), label, "dealing in a ceremony");
        }
        Ok(self.dealings())
    }

    fn dealings(&self) -> Vec<Outgoing> {
        let Some((round, dealer)) = &self.dealer else { return Vec::new() };
        dealer
            .pending()
            .map(|(player, share)| {
                Outgoing::To(
                    player.clone(),
                    DkgMessage::Dealing { round: *round, commitment: dealer.commitment().clone(), share: share.clone() },
                )
            })
            .collect()
    }

    /// Periodic work after each committed height: resend unacked dealings; close the dealing
    /// when everyone acked, from halfway through the window if the log would be usable, and in
    /// any case two heights before the deadline; keep gossiping our log until it is on chain.
    pub fn tick(&mut self, ledger: &impl CeremonySchedule, pending_logs: &mut Vec<SignedLog>) -> Vec<Outgoing> {
        let height = ledger.committed();
        let halfway = ledger.dealing_closes_at().is_some_and(|c| height >= c);
        let last_chance = ledger.deadline().is_some_and(|d| height.0 + 2 >= d.0);
        let max_reveals = ledger.running().map_or(0, |t| t.ceremony().max_reveals());
        let close = match &self.dealer {
            Some((_, dealer)) => dealer.all_acked() || (halfway && dealer.unacked() <= max_reveals) || last_chance,
            None => false,
        };
        let mut out = if close { self.close_dealing(pending_logs) } else { self.dealings() };
        let current = ledger.running().map(|t| t.ceremony().round());
        let on_chain = ledger.running().is_none_or(|t| t.has_log(&self.me));
        if let Some((round, log)) = &self.my_log
            && Some(*round) == current
            && !on_chain
        {
            out.push(Outgoing::All(DkgMessage::Log { round: *round, log: Box::new(log.clone()) }));
        }
        out
    }

    fn close_dealing(&mut self, pending_logs: &mut Vec<SignedLog>) -> Vec<Outgoing> {
        let Some((round, dealer)) = self.dealer.take() else { return Vec::new() };
        let log = dealer.finalize();
        if pending_logs.len() < MAX_PENDING_LOGS {
            pending_logs.push(log.clone());
        }
        self.my_log = Some((round, log.clone()));
        tracing::info!(round, label = self.label, "closed our dealing; gossiping the log");
        vec![Outgoing::All(DkgMessage::Log { round, log: Box::new(log) })]
    }

    /// A DKG message from an authenticated peer. Returns replies, or why the message is bad
    /// (the caller counts and blocks a peer that sends garbage).
    pub fn on_message(
        &mut self,
        ledger: &impl CeremonySchedule,
        from: &Ed25519PublicKey,
        message: DkgMessage,
        pending_logs: &mut Vec<SignedLog>,
    ) -> Result<Vec<Outgoing>, String> {
        match message {
            DkgMessage::Dealing { round, commitment, share } => {
                let Some((r, player)) = &mut self.player else { return Ok(Vec::new()) };
                if *r != round {
                    return Ok(Vec::new());
                }
                let ack = player.on_dealing(from, commitment, share).map_err(|e| e.to_string())?;
                // Durable before the ack leaves: a dealer that counts our ack relies on us
                // holding its dealing when the ceremony completes.
                if let Err(e) = self.persist_dealings() {
                    tracing::error!(round, error = %e, label = self.label, "cannot persist an accepted dealing: not acking it");
                    return Ok(Vec::new());
                }
                Ok(vec![Outgoing::To(from.clone(), DkgMessage::Ack { round, ack })])
            }
            DkgMessage::Ack { round, ack } => {
                let Some((r, dealer)) = &mut self.dealer else { return Ok(Vec::new()) };
                if *r != round {
                    return Ok(Vec::new());
                }
                dealer.receive_ack(from, ack).map_err(|e| e.to_string())?;
                Ok(if dealer.all_acked() { self.close_dealing(pending_logs) } else { Vec::new() })
            }
            DkgMessage::Log { round, log } => {
                let Some(transcript) = ledger.running() else { return Ok(Vec::new()) };
                if transcript.ceremony().round() != round || pending_logs.len() >= MAX_PENDING_LOGS || pending_logs.contains(&log) {
                    return Ok(Vec::new());
                }
                match transcript.check(&log) {
                    Ok(_) => pending_logs.push(*log),
                    Err(LogRejection::Duplicate) => {}
                    Err(e) => return Err(format!("bad dealer log: {e}")),
                }
                Ok(Vec::new())
            }
        }
    }

    /// The ledger completed ceremony `round`: finalize and persist our share if we are a player.
    pub fn on_completed(&mut self, ledger: &impl CeremonySchedule, round: u64, rng: &mut impl CryptoRng) -> Result<bool, String> {
        let Some(transcript) = ledger.completed() else { return Ok(false) };
        if transcript.ceremony().round() != round || !transcript.ceremony().is_player(&self.me) || self.shares.contains_key(&round) {
            return Ok(false);
        }
        let player = match self.player.take() {
            Some((r, player)) if r == round => player,
            _ => {
                // Restarted after the ceremony's last dealing: the dealings we acked are on disk;
                // the logs reveal our shares of those we did not ack (none, if we were down for
                // the whole dealing).
                let accepted = self.read_dealings(round)?;
                PlayerSession::resume(transcript.ceremony(), self.key.clone(), accepted).map_err(|e| e.to_string())?
            }
        };
        let (_, share) = player.finalize(transcript, rng).map_err(|e| e.to_string())?;
        let path = self.dir.join(format!("share-{round}"));
        let bytes = Zeroizing::new(share.encode().to_vec());
        self.write_private(&path, &bytes, false)?;
        self.shares.insert(round, share);
        let in_force = ledger.dealing_from();
        let newest: Vec<u64> = self.shares.keys().rev().take(SHARES_KEPT).copied().collect();
        let gone: Vec<u64> = self.shares.keys().copied().filter(|r| !newest.contains(r) && Some(*r) != in_force).collect();
        for old in gone {
            self.shares.remove(&old);
            let _ = self.disk.remove(&self.dir.join(format!("share-{old}")));
        }
        let _ = self.disk.remove(&self.dir.join(format!("dealer-seed-{round}")));
        let _ = self.disk.remove(&self.dealings_path(round));
        self.persisted_dealings = 0;
        Ok(true)
    }

    /// After a restart: if the last completed ceremony made us a player and its share is not
    /// on disk yet (the node stopped between the completing block and the share's write),
    /// finalize it now from the persisted dealings. The block's own event was replayed
    /// without us.
    pub fn finish_interrupted(&mut self, ledger: &impl CeremonySchedule, rng: &mut impl CryptoRng) -> Result<bool, String> {
        let Some(transcript) = ledger.completed() else { return Ok(false) };
        let ceremony = transcript.ceremony();
        let round = ceremony.round();
        if (!ceremony.is_reshare() && !ledger.live_dkg()) || !ceremony.is_player(&self.me) || self.shares.contains_key(&round) {
            return Ok(false);
        }
        let acked = !self.read_dealings(round)?.is_empty();
        match self.on_completed(ledger, round, rng) {
            Ok(done) => Ok(done),
            // Down for the whole dealing and too few reveals: no share this epoch, as for any
            // player whose dealings never arrived. Not a reason to stop.
            Err(e) if !acked => {
                tracing::warn!(round, error = %e, label = self.label, "no share of the ceremony that completed while the node was down: none until the next");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    fn dealings_path(&self, round: u64) -> PathBuf {
        self.dir.join(format!("player-{round}"))
    }

    /// The player session's accepted dealings, rewritten whole when one was added.
    fn persist_dealings(&mut self) -> Result<(), String> {
        let Some((round, player)) = &self.player else { return Ok(()) };
        let accepted = player.accepted();
        if accepted.len() == self.persisted_dealings {
            return Ok(());
        }
        let mut bytes = Zeroizing::new(Vec::new());
        for dealing in &accepted {
            let message = Zeroizing::new(
                DkgMessage::Dealing { round: *round, commitment: dealing.commitment.clone(), share: dealing.share.clone() }.encode(),
            );
            let ack = DkgMessage::Ack { round: *round, ack: dealing.ack.clone() }.encode();
            bytes.extend_from_slice(&dealing.dealer.encode());
            for part in [&message[..], &ack[..]] {
                bytes.extend_from_slice(&(part.len() as u32).to_be_bytes());
                bytes.extend_from_slice(part);
            }
        }
        let path = self.dealings_path(*round);
        self.write_private(&path, &bytes, true)?;
        self.persisted_dealings = accepted.len();
        Ok(())
    }

    /// The dealings persisted for ceremony `round` (none if the file does not exist). A file
    /// that does not decode stops the node: acks were sent for what it held.
    fn read_dealings(&self, round: u64) -> Result<Vec<AcceptedDealing>, String> {
        let path = self.dealings_path(round);
        let Some(bytes) = self.read_private(&path)? else { return Ok(Vec::new()) };
        let corrupt = |why: &str| format!("{} is corrupt ({why}): it holds reshare dealings this node acked", path.display());
        let mut out = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (dealer, after) = rest.split_at_checked(32).ok_or_else(|| corrupt("truncated dealer key"))?;
            let dealer = Ed25519PublicKey::decode(commonware_codec::Copying(dealer)).map_err(|_| corrupt("bad dealer key"))?;
            let mut parts = Vec::with_capacity(2);
            let mut after = after;
            for _ in 0..2 {
                let (len, tail) = after.split_at_checked(4).ok_or_else(|| corrupt("truncated length"))?;
                let len = u32::from_be_bytes(len.try_into().expect("4")) as usize;
                let (part, tail) = tail.split_at_checked(len).ok_or_else(|| corrupt("truncated dealing"))?;
                parts.push(DkgMessage::decode(part).map_err(|_| corrupt("undecodable dealing"))?);
                after = tail;
            }
            match (parts.remove(0), parts.remove(0)) {
                (DkgMessage::Dealing { round: r, commitment, share }, DkgMessage::Ack { round: a, ack }) if r == round && a == round => {
                    out.push(AcceptedDealing { dealer, commitment, share, ack });
                }
                _ => return Err(corrupt("not a dealing and ack of this round")),
            }
            rest = after;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcp_beacon::{BeaconParams, Ceremony, DealerSession};
    use tcp_crypto::insecure_ed25519_from_seed;

    #[test]
    fn a_player_writes_each_dealing_before_acking_and_resumes_it_after_a_restart() {
        let home = crate::store::tests::tempdir();
        let keys: Vec<_> = (0..4).map(insecure_ed25519_from_seed).collect();
        let set: Vec<_> = keys.iter().map(|k| k.public_key()).collect();
        let ceremony = Ceremony::new(3, None, &set, &set).unwrap();
        let members: Vec<_> = set.iter().map(|k| tcp_beacon::ledger::Member { key: k.clone(), coin_base: 1 }).collect();
        let schedule: tcp_beacon::ledger::SetSchedule = std::sync::Arc::new(move |_, _| members.clone());
        let (ledger, _) = Ledger::genesis(tcp_types::ChainId::new("test").unwrap(), BeaconParams::default(), schedule);
        let player_key = keys[2].clone();

        let mut beacon = CeremonyKeys::load(Arc::new(crate::disk::OsDisk), &home, "beacon", "beacon", player_key.clone(), None).unwrap();
        beacon.player = Some((3, PlayerSession::new(&ceremony, player_key.clone()).unwrap()));
        let mut acks = Vec::new();
        for dealer_index in [0usize, 1] {
            let dealer = DealerSession::start(&ceremony, keys[dealer_index].clone(), None, [dealer_index as u8 + 1; 32]).unwrap();
            let (_, share) = dealer.pending().find(|(pk, _)| *pk == set[2]).cloned().unwrap();
            let message = DkgMessage::Dealing { round: 3, commitment: dealer.commitment().clone(), share };
            let out = beacon.on_message(&ledger, &set[dealer_index], message, &mut Vec::new()).unwrap();
            let [Outgoing::To(to, DkgMessage::Ack { ack, .. })] = &out[..] else { panic!("one ack") };
            assert_eq!(to, &set[dealer_index]);
            // The ack is out only once the dealing is on disk.
            assert_eq!(beacon.read_dealings(3).unwrap().len(), dealer_index + 1);
            acks.push((dealer, format!("{ack:?}")));
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(beacon.dealings_path(3)).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);

        // A restart: the in-memory session is gone; the dealings come back from disk and each
        // re-sent dealing gets the very ack sent before.
        drop(beacon);
        let restarted = CeremonyKeys::load(Arc::new(crate::disk::OsDisk), &home, "beacon", "beacon", player_key.clone(), None).unwrap();
        let accepted = restarted.read_dealings(3).unwrap();
        assert_eq!(accepted.len(), 2);
        let mut resumed = PlayerSession::resume(&ceremony, player_key, accepted).unwrap();
        for (i, (dealer, ack)) in acks.iter().enumerate() {
            let (_, share) = dealer.pending().find(|(pk, _)| *pk == set[2]).cloned().unwrap();
            let again = resumed.on_dealing(&set[i], dealer.commitment().clone(), share).unwrap();
            assert_eq!(&format!("{again:?}"), ack);
        }

        // A damaged file stops the node instead of forgetting what it acked.
        let path = restarted.dealings_path(3);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, &bytes).unwrap();
        assert!(restarted.read_dealings(3).err().expect("refused").contains("corrupt"));
        std::fs::remove_dir_all(home).unwrap();
    }
}
