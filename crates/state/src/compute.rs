//! Compute nodes on chain (whitepaper §4.6, DESIGN §2; issue 19): an account bonds stake as a
//! compute node and names the endpoint its clients reach. The bond is what an SSSG member checks
//! before it releases a contract key to the node's enclave, and what a compute node loses when
//! slashed; it returns through its own unbonding queue (`compute-unbonding`), released in Ω like
//! validators' stake. A node that unbonds everything leaves the registry. Enclaves register under a compute
//! node (the registration quote comes with DKMP's enclave registry).

use crate::accounts::{AccountState, TxError};
use crate::staking::{Unbonding, global_key};
use crate::{Action, Address, keccak256};
use tcp_types::ByteReader;

/// Namespace byte of compute-node entries in the state tree (docs/state-proofs.md).
pub const COMPUTE_NAMESPACE: u8 = 0x08;
/// Compute nodes the registry holds.
pub const MAX_COMPUTE_NODES: usize = 1024;
/// An endpoint: `http://` or `https://`, then host, port and path in visible ASCII.
pub const MAX_ENDPOINT_BYTES: usize = 128;

/// Pending compute-bond unbondings, chain-wide and per operator: a queue of its own, so compute
/// unbondings neither crowd out validators' nor count in their rules.
pub const MAX_COMPUTE_UNBONDINGS: usize = 4096;
pub const MAX_COMPUTE_UNBONDINGS_PER_OPERATOR: usize = 8;

pub const REGISTER_COMPUTE_GAS: u64 = 60_000;
pub const UNBOND_COMPUTE_GAS: u64 = 40_000;

/// A compute node as the chain holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputeNode {
    pub operator: Address,
    pub bonded: u128,
    /// Jailed below this height (slashing comes with the compute transactions of issue 20).
    pub jailed_until: u64,
    pub registered_at: u64,
    pub endpoint: String,
}

impl ComputeNode {
    /// The leaf value: `operator (20) ‖ bonded (uint128) ‖ jailed_until (uint64) ‖
    /// registered_at (uint64) ‖ endpoint (ASCII, the rest)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(52 + self.endpoint.len());
        out.extend_from_slice(&self.operator.0);
        out.extend_from_slice(&self.bonded.to_be_bytes());
        out.extend_from_slice(&self.jailed_until.to_be_bytes());
        out.extend_from_slice(&self.registered_at.to_be_bytes());
        out.extend_from_slice(self.endpoint.as_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<ComputeNode> {
        let mut reader = ByteReader(bytes);
        let operator = Address(reader.array()?);
        let bonded = reader.u128()?;
        let jailed_until = reader.u64()?;
        let registered_at = reader.u64()?;
        let endpoint = String::from_utf8(reader.rest().to_vec()).ok()?;
        Some(ComputeNode { operator, bonded, jailed_until, registered_at, endpoint })
    }

    /// Whether the node can serve at `height`: bonded at least `min_bond` and not jailed.
    pub fn in_service(&self, height: u64, min_bond: u128) -> bool {
        self.bonded >= min_bond && height >= self.jailed_until
    }
}

/// Where a compute node's jail from a fault is kept, apart from its entry (which unbonding
/// everything deletes): `keccak256(0x08 ‖ "jail" ‖ operator)`.
pub fn compute_jail_key(operator: &Address) -> crate::smt::Hash {
    keccak256(&[&[COMPUTE_NAMESPACE], b"jail", &operator.0])
}

/// How long unbonded compute stake is held: long enough for any fault of the node to be
/// reported — a request it signed an outcome for stays valid up to
/// [`crate::contracts::MAX_REQUEST_LIFETIME`] heights, and its evidence the evidence age after
/// that — so leaving does not escape a slash.
pub fn compute_unbonding_hold(params: &crate::staking::StakingParams) -> u64 {
    params.unbonding_period.max(crate::contracts::MAX_REQUEST_LIFETIME.saturating_add(params.evidence_max_age))
}

pub fn compute_key(operator: &Address) -> crate::smt::Hash {
    keccak256(&[&[COMPUTE_NAMESPACE], &operator.0])
}

/// `http://` or `https://` and a non-empty rest of visible ASCII, at most
/// [`MAX_ENDPOINT_BYTES`] in all.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let rest = endpoint.strip_prefix("https://").or_else(|| endpoint.strip_prefix("http://"));
    match rest {
        _ if endpoint.len() > MAX_ENDPOINT_BYTES => Err(format!("longer than {MAX_ENDPOINT_BYTES} bytes")),
        Some(rest) if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_graphic()) => Ok(()),
        _ => Err("not http:// or https:// followed by a host in visible ASCII".into()),
    }
}

impl AccountState {
    pub fn compute_node(&self, operator: &Address) -> Option<ComputeNode> {
        self.get_entry(&compute_key(operator)).and_then(|v| ComputeNode::decode(&v))
    }

    /// Every registered compute node's operator, in registration order.
    pub fn compute_registry(&self) -> Vec<Address> {
        self.get_entry(&global_key("compute-registry"))
            .map(|v| v.chunks_exact(20).map(|c| Address(c.try_into().expect("20 bytes"))).collect())
            .unwrap_or_default()
    }

    pub fn compute_nodes(&self) -> Vec<ComputeNode> {
        self.compute_registry().iter().filter_map(|a| self.compute_node(a)).collect()
    }

    /// Compute bonds on their way back to their operators, by release height.
    pub fn compute_unbondings(&self) -> Vec<Unbonding> {
        self.unbonding_queue("compute-unbonding")
    }

    fn put_compute_registry(&mut self, registry: &[Address]) {
        let bytes: Vec<u8> = registry.iter().flat_map(|a| a.0).collect();
        self.put_entry(global_key("compute-registry"), (!bytes.is_empty()).then_some(bytes));
    }

    /// Heights a fault of `operator` keeps it jailed past (also after its node entry is gone).
    pub fn compute_jailed_until(&self, operator: &Address) -> u64 {
        self.get_entry(&compute_jail_key(operator)).and_then(|v| v.try_into().ok()).map_or(0, u64::from_be_bytes)
    }

    /// Slash a compute node by the validators' slash share — its bond and what it is still
    /// unbonding, so leaving does not escape a fault — and jail it for their jail period (its
    /// enclaves stop being served keys and their outcomes are refused); the amount taken.
    pub(crate) fn slash_compute_node(&mut self, operator: &Address, height: u64) -> Result<u128, TxError> {
        let params = self.staking_params();
        let share = |amount: u128| amount.checked_mul(u128::from(params.slash_bps)).map(|x| x / 10_000).ok_or(TxError::Overflow);
        let mut slashed = 0u128;
        let jailed_until = height.saturating_add(params.jail_period);
        self.put_entry(compute_jail_key(operator), Some(jailed_until.to_be_bytes().to_vec()));
        if let Some(mut node) = self.compute_node(operator) {
            let cut = share(node.bonded)?;
            node.bonded -= cut;
            node.jailed_until = node.jailed_until.max(jailed_until);
            self.put_compute_node(&node);
            slashed += cut;
        }
        let mut queue = self.compute_unbondings();
        for u in queue.iter_mut().filter(|u| u.operator == *operator) {
            let cut = share(u.amount)?;
            u.amount -= cut;
            slashed += cut;
        }
        self.put_unbonding_queue("compute-unbonding", &queue);
        Ok(slashed)
    }

    fn put_compute_node(&mut self, node: &ComputeNode) {
        self.put_entry(compute_key(&node.operator), Some(node.encode()));
    }

    /// Checks of a compute action against the state, before anything is written.
    pub(crate) fn check_compute(&self, sender: &Address, action: &Action, _height: u64) -> Result<(), TxError> {
        let params = self.staking_params();
        match action {
            Action::RegisterCompute { endpoint, amount } => {
                if self.compute_node(sender).is_some() {
                    return Err(TxError::AlreadyComputeNode);
                }
                let jailed_until = self.compute_jailed_until(sender);
                if jailed_until > _height {
                    return Err(TxError::StillJailed { until: jailed_until });
                }
                if *amount < params.min_compute_bond {
                    return Err(TxError::BondTooSmall { amount: *amount, minimum: params.min_compute_bond });
                }
                check_endpoint(endpoint).map_err(TxError::BadEndpoint)?;
                if self.compute_registry().len() >= MAX_COMPUTE_NODES {
                    return Err(TxError::RegistryFull);
                }
                Ok(())
            }
            Action::UnbondCompute { amount } => {
                let node = self.compute_node(sender).ok_or(TxError::NotAComputeNode)?;
                if *amount == 0 || *amount > node.bonded {
                    return Err(TxError::UnbondExceedsBond { amount: *amount, bonded: node.bonded });
                }
                let rest = node.bonded - amount;
                if rest != 0 && rest < params.min_compute_bond {
                    return Err(TxError::BondTooSmall { amount: rest, minimum: params.min_compute_bond });
                }
                let queue = self.compute_unbondings();
                if queue.len() >= MAX_COMPUTE_UNBONDINGS
                    || queue.iter().filter(|u| u.operator == *sender).count() >= MAX_COMPUTE_UNBONDINGS_PER_OPERATOR
                {
                    return Err(TxError::TooManyUnbondings);
                }
                Ok(())
            }
            _ => unreachable!("only compute actions are checked here"),
        }
    }

    /// Apply a checked compute action (the sender already paid its fee and nonce).
    pub(crate) fn apply_compute(&mut self, sender: Address, action: &Action, height: u64) {
        match action {
            Action::RegisterCompute { endpoint, amount } => {
                let mut account = self.account(&sender);
                account.balance -= amount; // checked: balance ≥ amount + max fee
                self.set_account_unchecked(sender, account);
                let mut registry = self.compute_registry();
                registry.push(sender);
                self.put_compute_registry(&registry);
                self.put_compute_node(&ComputeNode {
                    operator: sender,
                    bonded: *amount,
                    jailed_until: 0,
                    registered_at: height,
                    endpoint: endpoint.clone(),
                });
            }
            Action::UnbondCompute { amount } => {
                let mut node = self.compute_node(&sender).expect("checked");
                node.bonded -= amount;
                if node.bonded == 0 && height >= node.jailed_until {
                    // Gone: its entry and its registry slot are freed (a registry that only grew
                    // could be filled for the price of fees).
                    self.put_entry(compute_key(&sender), None);
                    let registry: Vec<Address> = self.compute_registry().into_iter().filter(|a| *a != sender).collect();
                    self.put_compute_registry(&registry);
                    self.remove_enclaves_of(&sender);
                } else {
                    self.put_compute_node(&node);
                }
                let mut queue = self.compute_unbondings();
                queue.push(Unbonding {
                    release_height: height.saturating_add(compute_unbonding_hold(&self.staking_params())),
                    operator: sender,
                    amount: *amount,
                });
                queue.sort_by_key(|u| u.release_height);
                self.put_unbonding_queue("compute-unbonding", &queue);
            }
            _ => unreachable!("only compute actions are applied here"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::{BlockEnv, StateConfig};
    use crate::staking::StakingParams;
    use crate::{AccountKey, Transaction};
    use proptest::prelude::*;
    use tcp_types::ChainId;

    fn chain() -> ChainId {
        ChainId::new("compute-test").unwrap()
    }

    fn state(funded: &[(Address, u128)]) -> AccountState {
        let config = StateConfig { chain_id: chain(), min_gas_price: 1, staking: StakingParams::default(), enclaves: None };
        AccountState::genesis(config, funded).unwrap()
    }

    fn apply(state: &mut AccountState, key: &AccountKey, nonce: u64, action: Action, height: u64) -> Result<(), TxError> {
        let tx = Transaction { chain_id: chain(), nonce, gas_price: 1, gas_limit: 100_000, action }.sign(key).verify(&chain()).unwrap();
        state.apply_transaction(&tx, &BlockEnv { height, time_secs: 0, fee_recipient: Address([0xfe; 20]) }).map(|_| ())
    }

    #[test]
    fn a_node_bonds_with_an_endpoint_unbonds_through_the_queue_and_the_supply_holds() {
        let key = AccountKey::from_bytes(&[5; 32]).unwrap();
        let mut s = state(&[(key.address(), 1_000_000)]);
        let supply = s.computed_supply();
        apply(&mut s, &key, 0, Action::RegisterCompute { endpoint: "https://compute.example:8443".into(), amount: 5_000 }, 3).unwrap();
        let node = s.compute_node(&key.address()).unwrap();
        assert_eq!((node.bonded, node.registered_at, node.endpoint.as_str()), (5_000, 3, "https://compute.example:8443"));
        assert!(node.in_service(3, 1_000));
        assert_eq!(s.compute_registry(), vec![key.address()]);
        assert_eq!(s.computed_supply(), supply, "the bond is locked, not burnt");
        assert_eq!(
            apply(&mut s, &key, 1, Action::RegisterCompute { endpoint: "https://again".into(), amount: 5_000 }, 4),
            Err(TxError::AlreadyComputeNode)
        );
        assert_eq!(
            apply(&mut s, &key, 1, Action::UnbondCompute { amount: 4_500 }, 4),
            Err(TxError::BondTooSmall { amount: 500, minimum: 1_000 })
        );
        apply(&mut s, &key, 1, Action::UnbondCompute { amount: 2_000 }, 4).unwrap();
        assert_eq!(s.compute_node(&key.address()).unwrap().bonded, 3_000);
        apply(&mut s, &key, 2, Action::UnbondCompute { amount: 3_000 }, 5).unwrap();
        // Unbonded in full: the entry and its registry slot are gone; the stake waits in a queue
        // of its own, apart from validators' unbondings.
        assert_eq!((s.compute_node(&key.address()), s.compute_registry()), (None, vec![]));
        // Held until any fault of the node could still be reported.
        let hold = compute_unbonding_hold(&s.staking_params());
        assert_eq!(hold, crate::contracts::MAX_REQUEST_LIFETIME + s.staking_params().evidence_max_age);
        let queued: Vec<(u128, u64)> = s.compute_unbondings().iter().map(|u| (u.amount, u.release_height)).collect();
        assert_eq!(queued, vec![(2_000, 4 + hold), (3_000, 5 + hold)]);
        assert!(s.unbondings().is_empty());
        assert_eq!(s.computed_supply(), supply);
        // Ω at that height returns the first part to the operator's balance.
        let before = s.account(&key.address()).balance;
        s.finalize_block(&crate::BlockOutcome { height: 4 + hold, ..Default::default() }).unwrap();
        assert_eq!(s.account(&key.address()).balance, before + 2_000);
        assert_eq!(s.compute_unbondings().len(), 1);
        // It may register again, as a new node.
        apply(&mut s, &key, 3, Action::RegisterCompute { endpoint: "http://10.0.0.2:9000".into(), amount: 1_000 }, 6).unwrap();
        assert_eq!(s.compute_registry().len(), 1);
        assert_eq!(s.compute_node(&key.address()).unwrap().registered_at, 6);
    }

    #[test]
    fn bad_registrations_are_refused_and_change_nothing() {
        let key = AccountKey::from_bytes(&[6; 32]).unwrap();
        let mut s = state(&[(key.address(), 1_000_000)]);
        let root = s.state_root();
        for (endpoint, amount, expected) in [
            ("https://ok", 999, TxError::BondTooSmall { amount: 999, minimum: 1_000 }),
            ("ftp://host", 1_000, TxError::BadEndpoint("not http:// or https:// followed by a host in visible ASCII".into())),
            ("https://", 1_000, TxError::BadEndpoint("not http:// or https:// followed by a host in visible ASCII".into())),
            ("https://a b", 1_000, TxError::BadEndpoint("not http:// or https:// followed by a host in visible ASCII".into())),
        ] {
            assert_eq!(
                apply(&mut s, &key, 0, Action::RegisterCompute { endpoint: endpoint.into(), amount }, 1),
                Err(expected),
                "{endpoint}"
            );
        }
        let long = format!("https://{}", "a".repeat(MAX_ENDPOINT_BYTES));
        assert!(matches!(
            apply(&mut s, &key, 0, Action::RegisterCompute { endpoint: long, amount: 1_000 }, 1),
            Err(TxError::BadEndpoint(_))
        ));
        assert_eq!(apply(&mut s, &key, 0, Action::UnbondCompute { amount: 1 }, 1), Err(TxError::NotAComputeNode));
        assert_eq!(s.state_root(), root, "refused transactions change nothing");
    }

    proptest! {
        #[test]
        fn compute_transactions_round_trip(endpoint in "[!-~]{0,128}", amount in any::<u128>(), unbond in any::<bool>()) {
            let key = AccountKey::from_bytes(&[7; 32]).unwrap();
            let action = if unbond { Action::UnbondCompute { amount } } else { Action::RegisterCompute { endpoint, amount } };
            let signed = Transaction { chain_id: chain(), nonce: 3, gas_price: 1, gas_limit: 60_000, action }.sign(&key);
            prop_assert_eq!(crate::SignedTransaction::decode(&signed.encode()).unwrap(), signed);
        }

        #[test]
        fn a_compute_node_entry_round_trips(op in any::<[u8; 20]>(), bonded in any::<u128>(), jailed in any::<u64>(), at in any::<u64>(), endpoint in "[!-~]{0,40}") {
            let node = ComputeNode { operator: Address(op), bonded, jailed_until: jailed, registered_at: at, endpoint };
            prop_assert_eq!(ComputeNode::decode(&node.encode()), Some(node));
        }
    }
}
