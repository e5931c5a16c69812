//! The root chain's inbox on the live network (DESIGN §5.7, docs/bridge.md): what this node's
//! root-chain follower saw at the confirmation depth, what a block it builds carries, and the
//! check every validator makes of a proposed block's entries against its own view.

use super::*;
use tcp_state::bridge::{InboxEntry, MAX_INBOX_PER_BLOCK};

/// Entries kept ahead of the chain: four full blocks' worth (more wait at the follower).
pub(super) const MAX_ROOT_INBOX: usize = 4 * MAX_INBOX_PER_BLOCK;

impl<H: Host> Node<H> {
    /// The next inbox id the chain will process (`None`: the chain has no bridge).
    fn inbox_processed(&self) -> Option<u64> {
        self.state.bridge_status().map(|s| s.inbox_processed)
    }

    /// Take what the follower saw: entries the chain processed are dropped, known ones kept,
    /// the consecutive rest appended (bounded). An entry that differs from the one held under
    /// its id means the root chain reorganised deeper than the confirmation depth: the
    /// follower's newer view replaces ours from there.
    pub(super) fn learn_root_inbox(&mut self, entries: Vec<InboxEntry>) {
        let Some(processed) = self.inbox_processed() else { return };
        self.prune_root_inbox();
        let now = self.now_ms();
        for entry in entries {
            let next = processed + self.root_inbox.len() as u64;
            if entry.id < processed {
                continue;
            }
            if entry.id < next {
                let at = (entry.id - processed) as usize;
                if self.root_inbox[at].0 != entry {
                    tracing::error!(node = %self.name, id = entry.id, "the root chain's inbox changed below the confirmation depth: following the newer view");
                    self.root_inbox.truncate(at);
                    self.root_inbox.push_back((entry, now));
                }
                continue;
            }
            if entry.id != next || self.root_inbox.len() >= MAX_ROOT_INBOX {
                break;
            }
            self.root_inbox.push_back((entry, now));
        }
    }

    /// Forget entries the committed state has processed.
    pub(super) fn prune_root_inbox(&mut self) {
        let processed = self.inbox_processed().unwrap_or(u64::MAX);
        while self.root_inbox.front().is_some_and(|(e, _)| e.id < processed) {
            self.root_inbox.pop_front();
        }
    }

    /// The entries a block of ours carries: the next ones, each held for two block intervals
    /// (so the other validators' followers, a little behind ours, have seen them too).
    pub(super) fn inbox_for_block(&self) -> Vec<InboxEntry> {
        let Some(processed) = self.inbox_processed() else { return Vec::new() };
        let settled = self.now_ms().saturating_sub(2 * self.spec.params().block_interval_ms);
        if self.root_inbox.front().is_none_or(|(e, _)| e.id != processed) {
            return Vec::new();
        }
        self.root_inbox.iter().take_while(|(_, at)| *at <= settled).take(MAX_INBOX_PER_BLOCK).map(|(e, _)| *e).collect()
    }

    /// A proposed block's entries must be the next ones of our own view, in order: a block that
    /// carries one we have not seen confirmed, or another one under its id, is invalid.
    pub(super) fn inbox_valid(&self, inbox: &[InboxEntry]) -> Result<(), String> {
        if inbox.is_empty() {
            return Ok(());
        }
        let processed = self.inbox_processed().ok_or("this chain has no bridge")?;
        if inbox.len() > self.root_inbox.len() {
            return Err(format!("{} inbox entries, {} seen confirmed here", inbox.len(), self.root_inbox.len()));
        }
        for (i, (entry, (ours, _))) in inbox.iter().zip(&self.root_inbox).enumerate() {
            if entry.id != processed + i as u64 || entry != ours {
                return Err(format!("inbox entry {} is not the root chain's as seen here", entry.id));
            }
        }
        Ok(())
    }
}
