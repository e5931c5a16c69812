//! One DKG or reshare ceremony on commonware's `feldman_desmedt`, split into the three roles a
//! node plays: dealer ([`DealerSession`]), player ([`PlayerSession`]) and, for everyone, the
//! chain-ordered [`Transcript`] of dealer logs that all nodes finalize over.
//!
//! Dealings and acks travel point to point over authenticated, encrypted channels; signed dealer
//! logs are committed by consensus, so every node finalizes over the same logs in the same order
//! and reaches the same output (the group key, the public sharing and who took part).

use crate::BeaconError;
use crate::signature::BeaconVariant;
use bytes::{Buf, BufMut};
use commonware_codec::{EncodeSize, Read, ReadExt, Write};
use commonware_cryptography::bls12381::dkg::feldman_desmedt::{
    Dealer, DealerPrivMsg, DealerPubMsg, Info, Logs, Output, Player, PlayerAck, Reveal, SignedDealerLog, observe,
};
use commonware_cryptography::bls12381::primitives::{group::Share, sharing::Mode};
use commonware_parallel::Sequential;
use commonware_utils::{N3f1, ordered::Set};
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroU32;
use tcp_crypto::{Ed25519PrivateKey, Ed25519PublicKey};

/// Binds every DKG signature (acks, logs) to TCP's beacon; fixed for the chain's lifetime.
pub const DKG_NAMESPACE: &[u8] = b"tcp/beacon/dkg";

/// The most participants a ceremony may have (bounds every decoder).
pub const MAX_PARTICIPANTS: u32 = 256;

pub type DkgOutput = Output<BeaconVariant, Ed25519PublicKey>;
pub type SignedLog = SignedDealerLog<BeaconVariant, Ed25519PublicKey>;
type DealerLog = commonware_cryptography::bls12381::dkg::feldman_desmedt::DealerLog<BeaconVariant, Ed25519PublicKey>;
pub type DealerCommitment = DealerPubMsg<BeaconVariant>;
pub type DealerShare = DealerPrivMsg;
pub type Ack = PlayerAck<Ed25519PublicKey>;
/// A player's secret share of the group key (zeroized on drop).
pub type BeaconShare = Share;

fn max_participants() -> NonZeroU32 {
    NonZeroU32::new(MAX_PARTICIPANTS).expect("non-zero")
}

/// The public description of one ceremony: who deals, who receives, and for a reshare the
/// output being reshared. Every node builds the identical value from chain state.
#[derive(Clone, Debug)]
pub struct Ceremony {
    info: Info<BeaconVariant, Ed25519PublicKey>,
    round: u64,
    dealers: Vec<Ed25519PublicKey>,
    players: Vec<Ed25519PublicKey>,
    reshare: bool,
}

impl Ceremony {
    /// `round` counts ceremonies over the chain's life, failed ones included. A reshare's
    /// dealers must hold shares of `previous` (and be at least its quorum).
    pub fn new(
        round: u64,
        previous: Option<DkgOutput>,
        dealers: &[Ed25519PublicKey],
        players: &[Ed25519PublicKey],
    ) -> Result<Self, BeaconError> {
        Ceremony::in_namespace(DKG_NAMESPACE, round, previous, dealers, players)
    }

    /// A ceremony of another sharing on the same engine (DKMP's master secret): its dealings,
    /// acks and logs are signed under `namespace`, so none of one sharing's messages counts in
    /// another's ceremony of the same round and participants.
    pub fn in_namespace(
        namespace: &'static [u8],
        round: u64,
        previous: Option<DkgOutput>,
        dealers: &[Ed25519PublicKey],
        players: &[Ed25519PublicKey],
    ) -> Result<Self, BeaconError> {
        let too_many = |n: usize| n > MAX_PARTICIPANTS as usize;
        if too_many(dealers.len()) || too_many(players.len()) {
            return Err(BeaconError::Ceremony("too many participants".into()));
        }
        let dealer_set = Set::from_iter_dedup(dealers.iter().cloned());
        let player_set = Set::from_iter_dedup(players.iter().cloned());
        if dealer_set.len() != dealers.len() || player_set.len() != players.len() {
            return Err(BeaconError::Ceremony("duplicate participant".into()));
        }
        let reshare = previous.is_some();
        let info = Info::new::<N3f1>(namespace, round, previous, Mode::NonZeroCounter, Reveal::V1, dealer_set.clone(), player_set.clone())
            .map_err(|e| BeaconError::Ceremony(e.to_string()))?;
        Ok(Ceremony { info, round, dealers: dealer_set.iter().cloned().collect(), players: player_set.iter().cloned().collect(), reshare })
    }

    pub fn round(&self) -> u64 {
        self.round
    }

    pub fn is_reshare(&self) -> bool {
        self.reshare
    }

    /// Dealers, in the ceremony's canonical (sorted) order.
    pub fn dealers(&self) -> &[Ed25519PublicKey] {
        &self.dealers
    }

    /// Players, in canonical order: a player's share index is its position here.
    pub fn players(&self) -> &[Ed25519PublicKey] {
        &self.players
    }

    pub fn is_dealer(&self, key: &Ed25519PublicKey) -> bool {
        self.dealers.binary_search(key).is_ok()
    }

    pub fn is_player(&self, key: &Ed25519PublicKey) -> bool {
        self.players.binary_search(key).is_ok()
    }

    /// The most reveals a usable log may carry (f of the players).
    pub fn max_reveals(&self) -> usize {
        use commonware_utils::Faults as _;
        N3f1::max_faults(self.players.len()) as usize
    }

    /// Shares needed to sign once the ceremony's output is in force (2f+1 of the players).
    pub fn threshold(&self) -> u32 {
        use commonware_utils::Faults as _;
        N3f1::quorum(self.players.len())
    }
}

/// A dealer's side of a ceremony. Its polynomial comes from a seed the host draws at random and
/// persists before sending anything, so a restarted dealer re-sends identical dealings instead
/// of equivocating.
pub struct DealerSession {
    dealer: Dealer<BeaconVariant, Ed25519PrivateKey>,
    commitment: DealerCommitment,
    shares: Vec<(Ed25519PublicKey, DealerShare)>,
    acked: BTreeSet<Ed25519PublicKey>,
}

impl DealerSession {
    pub fn start(ceremony: &Ceremony, key: Ed25519PrivateKey, previous_share: Option<Share>, seed: [u8; 32]) -> Result<Self, BeaconError> {
        let rng = ChaCha20Rng::from_seed(seed);
        let (dealer, commitment, shares) =
            Dealer::start::<N3f1>(rng, ceremony.info.clone(), key, previous_share).map_err(|e| BeaconError::Ceremony(e.to_string()))?;
        Ok(DealerSession { dealer, commitment, shares, acked: BTreeSet::new() })
    }

    pub fn commitment(&self) -> &DealerCommitment {
        &self.commitment
    }

    /// The dealings still unacknowledged, to (re)send.
    pub fn pending(&self) -> impl Iterator<Item = &(Ed25519PublicKey, DealerShare)> {
        self.shares.iter().filter(|(p, _)| !self.acked.contains(p))
    }

    /// Record a player's ack. Returns whether it was new.
    pub fn receive_ack(&mut self, player: &Ed25519PublicKey, ack: Ack) -> Result<bool, BeaconError> {
        if self.acked.contains(player) {
            return Ok(false);
        }
        self.dealer.receive_player_ack(player.clone(), ack).map_err(|e| BeaconError::BadAck(e.to_string()))?;
        self.acked.insert(player.clone());
        Ok(true)
    }

    pub fn all_acked(&self) -> bool {
        self.acked.len() == self.shares.len()
    }

    /// Players whose shares the log would reveal if closed now.
    pub fn unacked(&self) -> usize {
        self.shares.len() - self.acked.len()
    }

    /// Close the dealing: the signed log reveals the shares of players that did not ack.
    pub fn finalize(self) -> SignedLog {
        self.dealer.finalize::<N3f1>()
    }
}

/// A dealing a player accepted, with the ack it signed: persisted so that a restarted player
/// resumes (and re-sends the same ack) instead of losing its share.
#[derive(Clone)]
pub struct AcceptedDealing {
    pub dealer: Ed25519PublicKey,
    pub commitment: DealerCommitment,
    pub share: DealerShare,
    pub ack: Ack,
}

/// A player's side of a ceremony.
pub struct PlayerSession {
    player: Player<BeaconVariant, Ed25519PrivateKey>,
    accepted: BTreeMap<Ed25519PublicKey, AcceptedDealing>,
}

impl PlayerSession {
    pub fn new(ceremony: &Ceremony, key: Ed25519PrivateKey) -> Result<Self, BeaconError> {
        let player = Player::new(ceremony.info.clone(), key).map_err(|e| BeaconError::Ceremony(e.to_string()))?;
        Ok(PlayerSession { player, accepted: BTreeMap::new() })
    }

    /// Rebuild a player from its persisted dealings (after a crash).
    pub fn resume(ceremony: &Ceremony, key: Ed25519PrivateKey, accepted: Vec<AcceptedDealing>) -> Result<Self, BeaconError> {
        let mut session = PlayerSession::new(ceremony, key)?;
        for dealing in accepted {
            session.on_dealing(&dealing.dealer, dealing.commitment, dealing.share)?;
        }
        Ok(session)
    }

    /// Check a dealing against the dealer's commitment and ack it. A repeat of an accepted
    /// dealing gets the same ack again (the dealer may have restarted); a different dealing
    /// from the same dealer is refused (an equivocating dealer gets no second ack).
    pub fn on_dealing(&mut self, dealer: &Ed25519PublicKey, commitment: DealerCommitment, share: DealerShare) -> Result<Ack, BeaconError> {
        if let Some(done) = self.accepted.get(dealer) {
            return if done.commitment == commitment && done.share == share {
                Ok(done.ack.clone())
            } else {
                Err(BeaconError::BadDealing("a second, different dealing from the same dealer".into()))
            };
        }
        let ack = self
            .player
            .dealer_message::<N3f1>(dealer.clone(), commitment.clone(), share.clone())
            .map_err(|e| BeaconError::BadDealing(e.to_string()))?
            .ok_or_else(|| BeaconError::BadDealing("dealing already processed".into()))?;
        self.accepted.insert(dealer.clone(), AcceptedDealing { dealer: dealer.clone(), commitment, share, ack: ack.clone() });
        Ok(ack)
    }

    /// What to persist.
    pub fn accepted(&self) -> Vec<AcceptedDealing> {
        self.accepted.values().cloned().collect()
    }

    /// The player's share of the ceremony's output, from the committed logs.
    pub fn finalize(self, transcript: &Transcript, rng: &mut impl CryptoRng) -> Result<(DkgOutput, Share), BeaconError> {
        self.player.finalize::<N3f1>(rng, transcript.logs.clone(), &Sequential).map_err(|e| BeaconError::Ceremony(e.to_string()))
    }
}

/// Why a committed log was not recorded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogRejection {
    #[error("log signature does not verify for this ceremony")]
    BadSignature,
    #[error("signer is not a dealer of this ceremony")]
    NotADealer,
    #[error("dealer already has a log on chain")]
    Duplicate,
}

/// The dealer logs committed on chain for one ceremony, in chain order: the first valid log of
/// each dealer counts. Every node holds the same transcript and so finalizes to the same output.
#[derive(Clone)]
pub struct Transcript {
    ceremony: Ceremony,
    logs: Logs<BeaconVariant, Ed25519PublicKey, N3f1>,
    recorded: BTreeSet<Ed25519PublicKey>,
}

impl Transcript {
    pub fn new(ceremony: Ceremony) -> Self {
        let logs = Logs::new(ceremony.info.clone());
        Transcript { ceremony, logs, recorded: BTreeSet::new() }
    }

    pub fn ceremony(&self) -> &Ceremony {
        &self.ceremony
    }

    /// Whether a log from `dealer` is already recorded (proposers skip those).
    pub fn has_log(&self, dealer: &Ed25519PublicKey) -> bool {
        self.recorded.contains(dealer)
    }

    pub fn logs_recorded(&self) -> usize {
        self.recorded.len()
    }

    /// Check a log's signature and dealer without recording it (for proposers and mempools).
    pub fn check(&self, log: &SignedLog) -> Result<Ed25519PublicKey, LogRejection> {
        self.authenticate(log.clone()).map(|(dealer, _)| dealer)
    }

    /// The signature check and the dealer and duplicate rules, once.
    fn authenticate(&self, log: SignedLog) -> Result<(Ed25519PublicKey, DealerLog), LogRejection> {
        let (dealer, log) = log.check(&self.ceremony.info).ok_or(LogRejection::BadSignature)?;
        if !self.ceremony.is_dealer(&dealer) {
            return Err(LogRejection::NotADealer);
        }
        if self.recorded.contains(&dealer) {
            return Err(LogRejection::Duplicate);
        }
        Ok((dealer, log))
    }

    /// Record a committed log. Content faults (bad reveals, bad acks, too many reveals, wrong
    /// degree) are found at [`Transcript::finish`] and exclude the dealer there.
    pub fn record(&mut self, log: SignedLog) -> Result<Ed25519PublicKey, LogRejection> {
        let (dealer, log) = self.authenticate(log)?;
        self.recorded.insert(dealer.clone());
        self.logs.record(dealer.clone(), log);
        Ok(dealer)
    }

    /// The public output, if the recorded logs hold enough valid dealings. Dealers whose logs
    /// are faulty are excluded (and named in the error when too few remain).
    pub fn finish(&self, rng: &mut impl CryptoRng) -> Result<DkgOutput, BeaconError> {
        observe::<BeaconVariant, Ed25519PublicKey, N3f1>(rng, self.logs.clone(), &Sequential)
            .map_err(|e| BeaconError::Ceremony(e.to_string()))
    }
}

/// A DKG message between two nodes. The transport authenticates the sender and encrypts
/// (dealings carry secret shares).
#[derive(Clone, Debug)]
pub enum DkgMessage {
    /// Dealer → player: the dealer's public commitment and the player's secret share.
    Dealing { round: u64, commitment: DealerCommitment, share: DealerShare },
    /// Player → dealer.
    Ack { round: u64, ack: Ack },
    /// A dealer's signed log, gossiped so proposers put it on chain.
    Log { round: u64, log: Box<SignedLog> },
}

const TAG_DEALING: u8 = 0;
const TAG_ACK: u8 = 1;
const TAG_LOG: u8 = 2;

impl DkgMessage {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            DkgMessage::Dealing { round, commitment, share } => {
                out.put_u8(TAG_DEALING);
                round.write(&mut out);
                commitment.write(&mut out);
                share.write(&mut out);
            }
            DkgMessage::Ack { round, ack } => {
                out.put_u8(TAG_ACK);
                round.write(&mut out);
                ack.write(&mut out);
            }
            DkgMessage::Log { round, log } => {
                out.put_u8(TAG_LOG);
                round.write(&mut out);
                log.write(&mut out);
            }
        }
        out
    }

    /// Decode with every length bounded by [`MAX_PARTICIPANTS`]; trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, BeaconError> {
        let malformed = |e: commonware_codec::Error| BeaconError::MalformedDkgMessage(e.to_string());
        let Some((&tag, rest)) = bytes.split_first() else {
            return Err(BeaconError::MalformedDkgMessage("empty".into()));
        };
        let mut buf = commonware_codec::Copying(rest);
        let round = u64::read(&mut buf).map_err(malformed)?;
        let message = match tag {
            TAG_DEALING => DkgMessage::Dealing {
                round,
                commitment: DealerCommitment::read_cfg(&mut buf, &max_participants()).map_err(malformed)?,
                share: DealerShare::read(&mut buf).map_err(malformed)?,
            },
            TAG_ACK => DkgMessage::Ack { round, ack: Ack::read(&mut buf).map_err(malformed)? },
            TAG_LOG => DkgMessage::Log { round, log: Box::new(SignedLog::read_cfg(&mut buf, &max_participants()).map_err(malformed)?) },
            t => return Err(BeaconError::MalformedDkgMessage(format!("unknown tag {t}"))),
        };
        if buf.remaining() > 0 {
            return Err(BeaconError::MalformedDkgMessage(format!("{} trailing bytes", buf.remaining())));
        }
        Ok(message)
    }
}

/// Encode a signed log as block content.
pub fn encode_log(log: &SignedLog) -> Vec<u8> {
    let mut out = Vec::with_capacity(log.encode_size());
    log.write(&mut out);
    out
}

/// Decode a signed log from block content (bounded; trailing bytes are an error).
pub fn decode_log(bytes: &[u8]) -> Result<SignedLog, BeaconError> {
    let mut buf = commonware_codec::Copying(bytes);
    let log = SignedLog::read_cfg(&mut buf, &max_participants()).map_err(|e| BeaconError::MalformedDkgMessage(e.to_string()))?;
    if buf.remaining() > 0 {
        return Err(BeaconError::MalformedDkgMessage("trailing bytes after log".into()));
    }
    Ok(log)
}

/// The public key the players share, from a ceremony's output.
pub fn group_key(output: &DkgOutput) -> crate::signature::GroupKey {
    *output.public().public()
}

/// A node's share index in an output: its position among the players.
pub fn share_index(output: &DkgOutput, key: &Ed25519PublicKey) -> Option<u32> {
    output.players().position(key).map(|p| p as u32)
}

/// Run a whole ceremony among keys held in one process: every dealer deals to every player and
/// every player acks. For a development genesis, where one tool holds every validator's key,
/// and for tests and benchmarks. `previous` holds the dealers' shares for a reshare. Returns
/// the signed dealer logs (what the chain would commit), the output and each player's share
/// (in player order).
#[allow(clippy::type_complexity)]
pub fn run_local_ceremony(
    ceremony: &Ceremony,
    keys: &[Ed25519PrivateKey],
    previous: &[(Ed25519PublicKey, Share)],
    rng: &mut impl CryptoRng,
) -> Result<(Vec<SignedLog>, DkgOutput, Vec<(Ed25519PublicKey, Share)>), BeaconError> {
    use commonware_cryptography::Signer as _;
    let key_of = |pk: &Ed25519PublicKey| {
        keys.iter().find(|k| &k.public_key() == pk).cloned().ok_or_else(|| BeaconError::Ceremony("a participant's key is missing".into()))
    };
    let mut players = ceremony.players().iter().map(|pk| PlayerSession::new(ceremony, key_of(pk)?)).collect::<Result<Vec<_>, _>>()?;
    let mut transcript = Transcript::new(ceremony.clone());
    let mut logs = Vec::with_capacity(ceremony.dealers().len());
    for dealer_pk in ceremony.dealers() {
        let share = previous.iter().find(|(pk, _)| pk == dealer_pk).map(|(_, s)| s.clone());
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut dealer = DealerSession::start(ceremony, key_of(dealer_pk)?, share, seed)?;
        let dealings: Vec<_> = dealer.pending().cloned().collect();
        // Dealings come in the ceremony's player order, as `players` is.
        for ((player_pk, dealing), player) in dealings.into_iter().zip(&mut players) {
            let ack = player.on_dealing(dealer_pk, dealer.commitment().clone(), dealing)?;
            dealer.receive_ack(&player_pk, ack)?;
        }
        let log = dealer.finalize();
        transcript.record(log.clone()).map_err(|e| BeaconError::Ceremony(e.to_string()))?;
        logs.push(log);
    }
    let output = transcript.finish(rng)?;
    let mut shares = Vec::with_capacity(players.len());
    for (pk, player) in ceremony.players().iter().zip(players) {
        shares.push((pk.clone(), player.finalize(&transcript, rng)?.1));
    }
    Ok((logs, output, shares))
}
