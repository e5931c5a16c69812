//! Reshares on the live network: this node's dealings, acks and logs (`crate::reshare`) driven
//! from the loop, ledger events acted on, and newly registered validators tracked as peers.

use super::*;

impl<H: Host> Node<H> {
    /// Send a ceremony's messages: the beacon's, or (`dkmp`) the master secret's.
    pub(super) fn send_ceremony(&mut self, out: Vec<Outgoing>, dkmp: bool) {
        let wrap = |m| if dkmp { Wire::Dkmp(m) } else { Wire::Dkg(m) };
        for message in out {
            match message {
                Outgoing::To(peer, m) if peer == self.me => {
                    // Our own dealing to ourselves as a player.
                    let me = self.me.clone();
                    let answer = if dkmp {
                        self.dkmp_keys.on_message(&self.group, &me, m, &mut self.pending_dkmp_logs)
                    } else {
                        self.beacon_keys.on_message(&self.ledger, &me, m, &mut self.pending_logs)
                    };
                    match answer {
                        Ok(replies) => self.send_ceremony(replies, dkmp),
                        Err(e) => tracing::error!(node = %self.name, error = %e, dkmp, "our own ceremony message was refused"),
                    }
                }
                Outgoing::To(peer, m) => self.send_to(&peer, &wrap(m)),
                Outgoing::All(m) => self.send_all(&wrap(m), false),
            }
        }
    }

    /// Join a reshare that started, and do its periodic work (resend, close, gossip the log).
    pub(super) fn run_reshare(&mut self) {
        let mut out = match self.beacon_keys.join(&self.ledger, &mut self.rng) {
            Ok(out) => out,
            Err(e) => {
                tracing::error!(node = %self.name, error = %e, "cannot take part in the beacon reshare");
                Vec::new()
            }
        };
        out.extend(self.beacon_keys.tick(&self.ledger, &mut self.pending_logs));
        self.send_ceremony(out, false);
    }

    pub(super) fn on_ledger_event(&mut self, event: LedgerEvent) {
        match event {
            LedgerEvent::CeremonyStarted { round, reshare } => {
                tracing::info!(node = %self.name, round, reshare, "beacon ceremony started");
            }
            LedgerEvent::CeremonyCompleted { round, reshare, dealers_excluded } => {
                tracing::info!(node = %self.name, round, reshare, dealers_excluded, "beacon ceremony completed");
                if reshare {
                    match self.beacon_keys.on_completed(&self.ledger, round, &mut self.rng) {
                        Ok(true) => tracing::info!(node = %self.name, round, "our share of the reshared beacon key is stored"),
                        Ok(false) => {}
                        Err(e) => tracing::error!(node = %self.name, round, error = %e, "could not finalize our reshared beacon share"),
                    }
                }
            }
            LedgerEvent::CeremonyFailed { round, reshare, reason } => {
                tracing::error!(node = %self.name, round, reshare, reason, "beacon ceremony failed");
            }
            LedgerEvent::EpochStarted { epoch, start, reshared } => {
                let validators = self.ledger.validators().len();
                tracing::info!(node = %self.name, epoch, start = start.0, reshared, validators, "epoch started");
            }
            LedgerEvent::EpochExtended { epoch, end } => {
                tracing::warn!(node = %self.name, epoch, end = end.0, "the reshare missed its deadline: epoch extended, the set carries on");
            }
        }
    }

    /// Track the registered validators as p2p peers when the registry changed (a candidate
    /// must be reachable before the reshare that activates it).
    pub(super) fn track_registered(&mut self, height: Height) {
        let registry = self.state.registry();
        if registry == self.tracked_registry {
            return;
        }
        let bonded = bonded_peers(&self.state);
        match crate::p2p::peer_set(&self.config, &self.spec, &self.me, &bonded) {
            Ok(tracked) => {
                self.peers.track(height.0, tracked);
                self.tracked_registry = registry;
            }
            Err(e) => tracing::warn!(node = %self.name, error = %e, "cannot track the registered validators"),
        }
    }
}
