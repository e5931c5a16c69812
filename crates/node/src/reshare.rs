//! This node's part in the beacon ceremonies that run on the live network (the reshares at
//! validator-set changes, DESIGN §5.2): dealing from its current share, accepting dealings as a
//! player, getting its signed log on chain, and finalizing its new share once the ledger
//! completes the ceremony. Messages go point to point over the authenticated, encrypted p2p
//! channel (dealings carry secret shares); logs are gossiped so any proposer can include them.
//!
//! Durable: the dealer's seed is written (0600) before any dealing leaves, so a restarted
//! dealer re-deals identically instead of equivocating; every share is written (0600) as soon
//! as it is finalized, under the ceremony round it belongs to. A player's accepted dealings are
//! kept in memory only: a player restarted mid-ceremony acks again only the dealings re-sent
//! before the dealer closes, and a share it cannot finalize leaves it without a beacon share
//! (it still votes; σ needs 2f+1 partials, not all).

use crate::keystore::{read_private_file, write_private_file};
use commonware_codec::{DecodeExt as _, Encode as _};
use commonware_cryptography::Signer as _;
use rand_core::CryptoRng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tcp_beacon::dkg::{BeaconShare, DkgMessage, LogRejection};
use tcp_beacon::{Ceremony, DealerSession, Ledger, PlayerSession, SignedLog};
use tcp_crypto::{Ed25519PrivateKey, Ed25519PublicKey};
use zeroize::Zeroizing;

/// Shares kept: the one in force and the one waiting for the epoch boundary.
const SHARES_KEPT: usize = 2;
/// Dealer logs held for proposing.
pub const MAX_PENDING_LOGS: usize = 128;

/// Messages to send: to one peer, or to everyone.
pub enum Outgoing {
    To(Ed25519PublicKey, DkgMessage),
    All(DkgMessage),
}

pub struct BeaconKeys {
    dir: PathBuf,
    key: Ed25519PrivateKey,
    me: Ed25519PublicKey,
    shares: BTreeMap<u64, BeaconShare>,
    dealer: Option<(u64, DealerSession)>,
    player: Option<(u64, PlayerSession)>,
    /// Our signed log of the ceremony in progress, until it is on chain.
    my_log: Option<(u64, SignedLog)>,
    /// Ceremony rounds this process already joined (a dealer deals once per round).
    joined: Option<u64>,
}

impl BeaconKeys {
    /// The shares on disk (`<home>/beacon/share-<round>`) plus the genesis share from the node
    /// key file.
    pub fn load(home: &Path, key: Ed25519PrivateKey, genesis_share: Option<(u64, BeaconShare)>) -> Result<BeaconKeys, String> {
        let dir = home.join("beacon");
        let mut shares = BTreeMap::new();
        if let Some((round, share)) = genesis_share {
            shares.insert(round, share);
        }
        if dir.exists() {
            let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for entry in entries {
                let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
                let Some(round) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("share-")).and_then(|r| r.parse::<u64>().ok())
                else {
                    continue;
                };
                let bytes = read_private_file(&path, || crate::keystore::KeyStoreError::NotFound("beacon share".into(), path.clone()))
                    .map_err(|e| e.to_string())?;
                let share = BeaconShare::decode(commonware_codec::Copying(&bytes[..])).map_err(|e| format!("{}: {e}", path.display()))?;
                shares.insert(round, share);
            }
        }
        while shares.len() > SHARES_KEPT {
            shares.pop_first();
        }
        let me = key.public_key();
        Ok(BeaconKeys { dir, key, me, shares, dealer: None, player: None, my_log: None, joined: None })
    }

    /// Our share of the output of ceremony `round`.
    pub fn share(&self, round: u64) -> Option<BeaconShare> {
        self.shares.get(&round).cloned()
    }

    fn ensure_dir(&self) -> Result<(), String> {
        use std::os::unix::fs::DirBuilderExt as _;
        if !self.dir.exists() {
            std::fs::DirBuilder::new().mode(0o700).create(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        }
        Ok(())
    }

    /// The dealer seed of `round`: read back after a restart, else drawn and written first.
    fn dealer_seed(&self, round: u64) -> Result<[u8; 32], String> {
        self.ensure_dir()?;
        let path = self.dir.join(format!("dealer-seed-{round}"));
        if path.exists() {
            let bytes = read_private_file(&path, || crate::keystore::KeyStoreError::NotFound("dealer seed".into(), path.clone()))
                .map_err(|e| e.to_string())?;
            return bytes.as_slice().try_into().map_err(|_| format!("{}: not a 32-byte seed", path.display()));
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut seed[..]).map_err(|e| format!("the OS RNG failed: {e}"))?;
        write_private_file(&path, &seed[..], "dealer seed").map_err(|e| e.to_string())?;
        Ok(*seed)
    }

    /// Join the ceremony in progress (once per round): deal if we are a dealer, listen as a
    /// player if we are one. Returns the dealings to send.
    pub fn join(&mut self, ledger: &Ledger) -> Result<Vec<Outgoing>, String> {
        let Some(ceremony) = ledger.ceremony().cloned() else { return Ok(Vec::new()) };
        // The bootstrap DKG ran in `tcpchain init`; only live ceremonies are joined here.
        if !ceremony.is_reshare() {
            return Ok(Vec::new());
        }
        let round = ceremony.round();
        if self.joined == Some(round) {
            return Ok(Vec::new());
        }
        self.joined = Some(round);
        self.dealer = None;
        self.player = None;
        self.my_log = None;
        if ceremony.is_player(&self.me) {
            self.player = Some((round, PlayerSession::new(&ceremony, self.key.clone()).map_err(|e| e.to_string())?));
        }
        let on_chain = ledger.transcript().is_some_and(|t| t.has_log(&self.me));
        if ceremony.is_dealer(&self.me) && !on_chain {
            let previous = ledger.output_round(ledger.height().next()).and_then(|r| self.share(r));
            let Some(previous) = previous else {
                return Err(format!("cannot deal in reshare {round}: no share of the current sharing"));
            };
            let seed = Zeroizing::new(self.dealer_seed(round)?);
            let dealer = DealerSession::start(&ceremony, self.key.clone(), Some(previous), *seed).map_err(|e| e.to_string())?;
            self.dealer = Some((round, dealer));
            tracing::info!(round, players = ceremony.players().len(), "dealing in the beacon reshare");
        }
        Ok(self.dealings())
    }

    fn dealings(&self) -> Vec<Outgoing> {
        let Some((round, dealer)) = &self.dealer else { return Vec::new() };
        dealer
            .pending()
            .map(|(player, share)| {
                Outgoing::To(player.clone(), DkgMessage::Dealing { round: *round, commitment: dealer.commitment().clone(), share: share.clone() })
            })
            .collect()
    }

    /// Periodic work after each committed height: resend unacked dealings; close the dealing
    /// when everyone acked, from halfway through the window if the log would be usable, and in
    /// any case two heights before the deadline; keep gossiping our log until it is on chain.
    pub fn tick(&mut self, ledger: &Ledger, pending_logs: &mut Vec<SignedLog>) -> Vec<Outgoing> {
        let height = ledger.height();
        let halfway = ledger.dealing_closes_at().is_some_and(|c| height >= c);
        let last_chance = ledger.ceremony_deadline().is_some_and(|d| height.0 + 2 >= d.0);
        let max_reveals = ledger.ceremony().map_or(0, Ceremony::max_reveals);
        let close = match &self.dealer {
            Some((_, dealer)) => dealer.all_acked() || (halfway && dealer.unacked() <= max_reveals) || last_chance,
            None => false,
        };
        let mut out = if close { self.close_dealing(pending_logs) } else { self.dealings() };
        let current = ledger.ceremony().map(Ceremony::round);
        let on_chain = ledger.transcript().is_none_or(|t| t.has_log(&self.me));
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
        tracing::info!(round, "closed our reshare dealing; gossiping the log");
        vec![Outgoing::All(DkgMessage::Log { round, log: Box::new(log) })]
    }

    /// A DKG message from an authenticated peer. Returns replies, or why the message is bad
    /// (the caller counts and blocks a peer that sends garbage).
    pub fn on_message(
        &mut self,
        ledger: &Ledger,
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
                let Some(transcript) = ledger.transcript() else { return Ok(Vec::new()) };
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
    pub fn on_completed(&mut self, ledger: &Ledger, round: u64, rng: &mut impl CryptoRng) -> Result<bool, String> {
        let Some(transcript) = ledger.completed_transcript() else { return Ok(false) };
        if transcript.ceremony().round() != round || !transcript.ceremony().is_player(&self.me) || self.shares.contains_key(&round) {
            return Ok(false);
        }
        let Some((r, player)) = self.player.take() else {
            return Err(format!("we are a player of reshare {round} but hold no session (restarted mid-ceremony?)"));
        };
        if r != round {
            return Err(format!("our player session is for ceremony {r}, not {round}"));
        }
        let (_, share) = player.finalize(transcript, rng).map_err(|e| e.to_string())?;
        self.ensure_dir()?;
        let path = self.dir.join(format!("share-{round}"));
        let bytes = Zeroizing::new(share.encode().to_vec());
        write_private_file(&path, &bytes, "beacon share").map_err(|e| e.to_string())?;
        self.shares.insert(round, share);
        while self.shares.len() > SHARES_KEPT {
            if let Some((old, _)) = self.shares.pop_first() {
                let _ = std::fs::remove_file(self.dir.join(format!("share-{old}")));
            }
        }
        let _ = std::fs::remove_file(self.dir.join(format!("dealer-seed-{round}")));
        Ok(true)
    }
}
