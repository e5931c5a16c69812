//! What the node runs on in the simulator: commonware's deterministic runtime and simulated
//! network. The node's code is the production code; the simulator only sees, and for a
//! Byzantine node rewrites, what leaves it ([`TappedSender`]).

use crate::adversary::Adversary;
use crate::checker::Checker;
use commonware_actor::{Feedback, Unreliable};
use commonware_p2p::{CheckedSender, LimitedSender, Recipients};
use commonware_runtime::IoBufs;
use commonware_runtime::deterministic::Context;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tcp_crypto::Ed25519PublicKey;
use tcp_node::node::{Host, PeerControl};
use tcp_node::wire::Wire;

pub type RawSender = commonware_p2p::simulated::Sender<Ed25519PublicKey, Context>;
pub type SimReceiver = commonware_p2p::simulated::Receiver<Ed25519PublicKey>;

pub struct SimHost;

impl Host for SimHost {
    type Context = Context;
    type Sender = TappedSender;
    type Receiver = TappedReceiver;
    type Peers = SimPeers;
}

/// What every node's outgoing traffic passes: the checker sees each consensus message an
/// honest node signs (two different ones for one slot is a double sign).
pub struct Tap {
    pub node: usize,
    /// The node's key: a message is the node's own when signing its content with it gives its
    /// signature (ed25519 is deterministic); relayed messages of others are not its to answer for.
    pub key: tcp_crypto::Ed25519PrivateKey,
    pub domains: tcp_consensus::ConsensusDomains,
    pub checker: Arc<Mutex<Checker>>,
    pub adversary: Option<Arc<Mutex<Adversary>>>,
    pub messages_sent: Arc<std::sync::atomic::AtomicU64>,
    /// Where an honest node's non-nil precommits are kept (the restart check).
    pub precommits: Option<Arc<Mutex<Vec<crate::run::SentPrecommit>>>>,
}

impl Tap {
    fn observe(&self, bytes: &[u8]) {
        self.messages_sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(Wire::Consensus(message)) = Wire::decode(bytes) {
            if !self.signed_by_us(&message) {
                return;
            }
            if let (Some(kept), tcp_consensus::ConsensusMessage::Vote(vote)) = (&self.precommits, &message)
                && vote.vote.vote_type == tcp_consensus::VoteType::Precommit
                && vote.vote.value.is_some()
            {
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                // One per (node, height, round): a resend adds nothing.
                let seen = kept.iter().rev().take(64).any(|p| {
                    p.node == self.node && p.vote.vote.height == vote.vote.height && p.vote.vote.round == vote.vote.round
                });
                if !seen {
                    kept.push(crate::run::SentPrecommit { node: self.node, vote: vote.clone() });
                }
            }
            self.checker.lock().unwrap_or_else(|e| e.into_inner()).sent(self.node, &message);
        }
    }
}

impl Tap {
    fn signed_by_us(&self, message: &tcp_consensus::ConsensusMessage) -> bool {
        match message {
            tcp_consensus::ConsensusMessage::Vote(v) => self.domains.sign_vote(&self.key, v.vote.clone()).signature == v.signature,
            tcp_consensus::ConsensusMessage::Proposal(p) => {
                self.domains.sign_proposal(&self.key, p.proposal.clone()).signature == p.signature
            }
        }
    }
}

#[derive(Clone)]
pub struct TappedSender {
    pub raw: RawSender,
    pub tap: Arc<Tap>,
}

impl std::fmt::Debug for TappedSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TappedSender(node {})", self.tap.node)
    }
}

impl LimitedSender for TappedSender {
    type PublicKey = Ed25519PublicKey;
    type Checked<'a> = TappedChecked<'a>;

    fn check(&mut self, recipients: Recipients<Ed25519PublicKey>) -> Result<TappedChecked<'_>, SystemTime> {
        let tap = self.tap.clone();
        let raw = self.raw.clone();
        let checked = self.raw.check(recipients)?;
        Ok(TappedChecked { checked, tap, raw })
    }
}

pub struct TappedChecked<'a> {
    checked: <RawSender as LimitedSender>::Checked<'a>,
    tap: Arc<Tap>,
    raw: RawSender,
}

impl CheckedSender for TappedChecked<'_> {
    type PublicKey = Ed25519PublicKey;

    fn recipients(&self) -> Vec<Ed25519PublicKey> {
        self.checked.recipients()
    }

    fn send(self, message: impl Into<IoBufs> + Send, priority: bool) -> Unreliable<Feedback> {
        let bytes = message.into().coalesce().as_ref().to_vec();
        self.tap.observe(&bytes);
        let Some(adversary) = &self.tap.adversary else { return self.checked.send(bytes, priority) };
        let recipients = self.checked.recipients();
        let out = adversary.lock().unwrap_or_else(|e| e.into_inner()).rewrite(&bytes, &recipients);
        let mut raw = self.raw;
        for (to, bytes) in out {
            let _ = commonware_p2p::Sender::send(&mut raw, to, bytes, priority);
        }
        Unreliable::new(Feedback::Ok)
    }
}

/// Blocking goes to the simulated network; the peer sets are the simulator's (it links every
/// identity of the run), so a node's `track` changes nothing here.
#[derive(Clone)]
pub struct SimPeers {
    pub control: commonware_p2p::simulated::Control<Ed25519PublicKey, Context>,
}

impl PeerControl for SimPeers {
    fn block(&mut self, peer: Ed25519PublicKey) {
        let _ = commonware_p2p::Blocker::block(&mut self.control, peer);
    }
    fn track(&mut self, _id: u64, _peers: commonware_p2p::AddressableTrackedPeers<Ed25519PublicKey>) {}
}

/// What a Byzantine node receives passes its adversary first (amnesia ignores precommits).
pub struct TappedReceiver {
    pub inner: SimReceiver,
    pub adversary: Option<Arc<Mutex<Adversary>>>,
}

impl std::fmt::Debug for TappedReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TappedReceiver")
    }
}

impl commonware_p2p::Receiver for TappedReceiver {
    type Error = commonware_p2p::simulated::Error;
    type PublicKey = Ed25519PublicKey;

    async fn recv(&mut self) -> Result<commonware_p2p::Message<Ed25519PublicKey>, Self::Error> {
        loop {
            let (peer, message) = self.inner.recv().await?;
            let seen = match &self.adversary {
                Some(adversary) => adversary.lock().unwrap_or_else(|e| e.into_inner()).incoming(message.as_ref()),
                None => true,
            };
            if seen {
                return Ok((peer, message));
            }
        }
    }

    fn capacity(&self) -> std::num::NonZeroUsize {
        commonware_p2p::Receiver::capacity(&self.inner)
    }
}
