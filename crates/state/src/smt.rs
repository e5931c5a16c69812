//! The state commitment: a keccak-256 sparse Merkle tree over 256-bit keys, persistent (every
//! version shares unchanged subtrees, so a snapshot is an `Arc` clone) and canonical (its shape
//! depends only on the set of keys, never on the order of updates).
//!
//! Format (docs/state-proofs.md; simple to check in Solidity):
//! * `leaf = keccak256(0x00 ‖ key ‖ value_hash)`, `value_hash = keccak256(value)`;
//! * `node = keccak256(0x01 ‖ left ‖ right)`, an empty subtree is 32 zero bytes;
//! * a subtree holding exactly one key is that key's leaf, at the depth where its key first
//!   parts from every other key; a subtree with none is empty. So a leaf sits about
//!   log₂(keys) levels down, not 256, and an update costs about that many hashes.
//! * Bit `i` of a key (0 = the most significant bit of byte 0) picks the side at depth `i`:
//!   0 left, 1 right.

use crate::account::keccak256;
use std::sync::Arc;

pub type Hash = [u8; 32];

/// The root of a tree without keys.
pub const EMPTY_ROOT: Hash = [0u8; 32];
const LEAF_TAG: u8 = 0x00;
const NODE_TAG: u8 = 0x01;
/// A proof has at most one sibling per key bit.
pub const MAX_PROOF_DEPTH: usize = 256;

pub fn leaf_hash(key: &Hash, value_hash: &Hash) -> Hash {
    keccak256(&[&[LEAF_TAG], key, value_hash])
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    keccak256(&[&[NODE_TAG], left, right])
}

/// Bit `depth` of `key`, most significant first.
fn bit(key: &Hash, depth: usize) -> usize {
    ((key[depth / 8] >> (7 - depth % 8)) & 1) as usize
}

#[derive(Debug)]
struct Leaf {
    key: Hash,
    value: Vec<u8>,
    hash: Hash,
}

#[derive(Debug)]
struct Internal {
    children: [Option<Node>; 2],
    hash: Hash,
}

#[derive(Clone, Debug)]
enum Node {
    Leaf(Arc<Leaf>),
    Internal(Arc<Internal>),
}

impl Node {
    fn hash(&self) -> &Hash {
        match self {
            Node::Leaf(l) => &l.hash,
            Node::Internal(i) => &i.hash,
        }
    }
}

fn hash_of(node: &Option<Node>) -> &Hash {
    node.as_ref().map_or(&EMPTY_ROOT, Node::hash)
}

/// One change: set `key` to `value`, or remove it (`None`).
pub type Update = (Hash, Option<Vec<u8>>);

/// A version of the tree. Cloning is O(1); updating copies only the paths it changes.
#[derive(Clone, Debug, Default)]
pub struct SparseMerkleTree {
    root: Option<Node>,
    len: usize,
}

impl PartialEq for SparseMerkleTree {
    fn eq(&self, other: &Self) -> bool {
        self.root() == other.root()
    }
}
impl Eq for SparseMerkleTree {}

impl SparseMerkleTree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn root(&self) -> Hash {
        *hash_of(&self.root)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, key: &Hash) -> Option<&[u8]> {
        let mut node = self.root.as_ref()?;
        let mut depth = 0;
        loop {
            match node {
                Node::Leaf(l) => return (l.key == *key).then_some(l.value.as_slice()),
                Node::Internal(i) => {
                    node = i.children[bit(key, depth)].as_ref()?;
                    depth += 1;
                }
            }
        }
    }

    /// Every (key, value) in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Hash, &[u8])> {
        let mut stack: Vec<&Node> = self.root.iter().collect();
        std::iter::from_fn(move || {
            while let Some(node) = stack.pop() {
                match node {
                    Node::Leaf(l) => return Some((&l.key, l.value.as_slice())),
                    Node::Internal(i) => stack.extend(i.children.iter().rev().flatten()),
                }
            }
            None
        })
    }

    pub fn insert(&mut self, key: Hash, value: Vec<u8>) {
        self.apply(vec![(key, Some(value))]);
    }

    pub fn remove(&mut self, key: &Hash) {
        self.apply(vec![(*key, None)]);
    }

    /// Apply a batch: every node on the changed paths is rebuilt, and hashed, once. A key
    /// updated twice in a batch takes its last value.
    pub fn apply(&mut self, mut updates: Vec<Update>) {
        if updates.is_empty() {
            return;
        }
        // Sorted and deduplicated (last write wins), so each subtree's updates are a slice.
        updates.reverse();
        updates.sort_by(|a, b| a.0.cmp(&b.0));
        updates.dedup_by(|later, earlier| later.0 == earlier.0);
        let mut len = self.len as isize;
        self.root = update(self.root.as_ref(), 0, &updates, &mut len);
        debug_assert!(len >= 0);
        self.len = len as usize;
    }

    /// A proof of `key`'s value, or of its absence, against [`Self::root`].
    pub fn prove(&self, key: &Hash) -> StateProof {
        let mut siblings = Vec::new();
        let mut node = self.root.as_ref();
        let mut depth = 0;
        let terminal = loop {
            match node {
                None => break Terminal::Empty,
                Some(Node::Leaf(l)) if l.key == *key => break Terminal::Value(l.value.clone()),
                Some(Node::Leaf(l)) => break Terminal::OtherLeaf { key: l.key, value_hash: keccak256(&[&l.value]) },
                Some(Node::Internal(i)) => {
                    let side = bit(key, depth);
                    siblings.push(*hash_of(&i.children[1 - side]));
                    node = i.children[side].as_ref();
                    depth += 1;
                }
            }
        };
        StateProof { key: *key, siblings, terminal }
    }
}

/// Rebuild the subtree at `depth` under `node` with `updates` (sorted, unique keys, all sharing
/// the path to this subtree). `len` tracks the number of keys.
fn update(node: Option<&Node>, depth: usize, updates: &[Update], len: &mut isize) -> Option<Node> {
    if updates.is_empty() {
        return node.cloned();
    }
    match node {
        None => build(depth, updates.iter().filter_map(|(k, v)| Some(new_leaf(*k, v.clone()?, len))).collect()),
        Some(Node::Leaf(leaf)) => {
            // The leaf and the updates make a set of leaves; build its subtree.
            let mut leaves: Vec<Node> = Vec::with_capacity(updates.len() + 1);
            let mut kept = Some(leaf);
            for (key, value) in updates {
                if *key == leaf.key {
                    kept = None;
                    *len -= 1;
                }
                if let Some(value) = value {
                    leaves.push(new_leaf(*key, value.clone(), len));
                }
            }
            if let Some(leaf) = kept {
                let at = leaves.partition_point(|n| leaf_key(n) < &leaf.key);
                leaves.insert(at, Node::Leaf(leaf.clone()));
            }
            build(depth, leaves)
        }
        Some(Node::Internal(internal)) => {
            assert!(depth < MAX_PROOF_DEPTH, "an internal node at depth 256 would need two equal keys");
            let split = updates.partition_point(|(k, _)| bit(k, depth) == 0);
            let left = update(internal.children[0].as_ref(), depth + 1, &updates[..split], len);
            let right = update(internal.children[1].as_ref(), depth + 1, &updates[split..], len);
            join(left, right)
        }
    }
}

fn new_leaf(key: Hash, value: Vec<u8>, len: &mut isize) -> Node {
    *len += 1;
    let hash = leaf_hash(&key, &keccak256(&[&value]));
    Node::Leaf(Arc::new(Leaf { key, value, hash }))
}

fn leaf_key(node: &Node) -> &Hash {
    match node {
        Node::Leaf(l) => &l.key,
        Node::Internal(_) => unreachable!("build takes leaves only"),
    }
}

/// The canonical subtree at `depth` holding exactly `leaves` (sorted by key).
fn build(depth: usize, mut leaves: Vec<Node>) -> Option<Node> {
    match leaves.len() {
        0 => None,
        1 => leaves.pop(),
        _ => {
            assert!(depth < MAX_PROOF_DEPTH, "two leaves with equal keys");
            let split = leaves.partition_point(|n| bit(leaf_key(n), depth) == 0);
            let right = leaves.split_off(split);
            join(build(depth + 1, leaves), build(depth + 1, right))
        }
    }
}

/// An internal node over two subtrees, or — keeping the tree canonical — the subtree itself
/// when it is a lone leaf beside an empty side.
fn join(left: Option<Node>, right: Option<Node>) -> Option<Node> {
    match (left, right) {
        (None, None) => None,
        (Some(Node::Leaf(l)), None) | (None, Some(Node::Leaf(l))) => Some(Node::Leaf(l)),
        (left, right) => {
            let hash = node_hash(hash_of(&left), hash_of(&right));
            Some(Node::Internal(Arc::new(Internal { children: [left, right], hash })))
        }
    }
}

/// What the path of a proof ends in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Terminal {
    /// The key's own leaf: the key is present with this value.
    Value(Vec<u8>),
    /// Another key's leaf where the key would be: the key is absent.
    OtherLeaf { key: Hash, value_hash: Hash },
    /// An empty subtree where the key would be: the key is absent.
    Empty,
}

/// A Merkle proof for one key: the siblings from the root down (`siblings[d]` is the sibling
/// at depth `d + 1`) and what the key's path ends in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateProof {
    pub key: Hash,
    pub siblings: Vec<Hash>,
    pub terminal: Terminal,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    #[error("the proof has {0} siblings; a path has at most 256")]
    TooDeep(usize),
    #[error("the proof's other leaf has the proven key itself")]
    OtherLeafIsKey,
    #[error("the proof's other leaf does not lie on the key's path")]
    OtherLeafOffPath,
    #[error("the proof yields root {computed}, not the expected {expected}")]
    RootMismatch { computed: String, expected: String },
}

/// The largest value a binary proof carries (every leaf of the state is far smaller but a
/// contract's encrypted state or code).
pub const MAX_PROOF_VALUE_BYTES: usize = 128 * 1024;

impl StateProof {
    /// Binary form (for the enclave's channel): `key (32) ‖ n (uint16) ‖ n × sibling (32) ‖
    /// terminal`, the terminal `0x00 ‖ length (uint32) ‖ value`, `0x01 ‖ key ‖ value hash` or
    /// `0x02` (empty).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + 2 + 32 * self.siblings.len() + 70);
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&(self.siblings.len() as u16).to_be_bytes());
        for s in &self.siblings {
            out.extend_from_slice(s);
        }
        match &self.terminal {
            Terminal::Value(v) => {
                out.push(0);
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v);
            }
            Terminal::OtherLeaf { key, value_hash } => {
                out.push(1);
                out.extend_from_slice(key);
                out.extend_from_slice(value_hash);
            }
            Terminal::Empty => out.push(2),
        }
        out
    }

    /// Exactly one proof in binary form; bounded by [`MAX_PROOF_DEPTH`] siblings and
    /// [`MAX_PROOF_VALUE_BYTES`].
    pub fn decode(bytes: &[u8]) -> Option<StateProof> {
        let mut r = tcp_types::ByteReader(bytes);
        let key = r.array()?;
        let n = u16::from_be_bytes(r.array()?) as usize;
        if n > MAX_PROOF_DEPTH {
            return None;
        }
        let siblings = (0..n).map(|_| r.array()).collect::<Option<Vec<Hash>>>()?;
        let terminal = match r.u8()? {
            0 => {
                let len = r.u32()? as usize;
                if len > MAX_PROOF_VALUE_BYTES {
                    return None;
                }
                Terminal::Value(r.take(len)?.to_vec())
            }
            1 => Terminal::OtherLeaf { key: r.array()?, value_hash: r.array()? },
            2 => Terminal::Empty,
            _ => return None,
        };
        r.rest().is_empty().then_some(StateProof { key, siblings, terminal })
    }

    /// The value the proof shows (`None`: the key is absent).
    pub fn value(&self) -> Option<&[u8]> {
        match &self.terminal {
            Terminal::Value(v) => Some(v),
            _ => None,
        }
    }

    /// The root this proof hashes up to.
    pub fn computed_root(&self) -> Result<Hash, ProofError> {
        let depth = self.siblings.len();
        if depth > MAX_PROOF_DEPTH {
            return Err(ProofError::TooDeep(depth));
        }
        let mut hash = match &self.terminal {
            Terminal::Value(value) => leaf_hash(&self.key, &keccak256(&[value])),
            Terminal::OtherLeaf { key, value_hash } => {
                if *key == self.key {
                    return Err(ProofError::OtherLeafIsKey);
                }
                if (0..depth).any(|d| bit(key, d) != bit(&self.key, d)) {
                    return Err(ProofError::OtherLeafOffPath);
                }
                leaf_hash(key, value_hash)
            }
            Terminal::Empty => EMPTY_ROOT,
        };
        for (d, sibling) in self.siblings.iter().enumerate().rev() {
            hash = if bit(&self.key, d) == 0 { node_hash(&hash, sibling) } else { node_hash(sibling, &hash) };
        }
        Ok(hash)
    }

    /// Check the proof against `root`; the proven value (`None`: absent).
    pub fn verify(&self, root: &Hash) -> Result<Option<&[u8]>, ProofError> {
        let computed = self.computed_root()?;
        if computed != *root {
            return Err(ProofError::RootMismatch { computed: tcp_types::hex::encode(&computed), expected: tcp_types::hex::encode(root) });
        }
        Ok(self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn key(i: u32) -> Hash {
        keccak256(&[&i.to_be_bytes()])
    }

    /// The reference: the root of a key set computed from the definition, recursively.
    fn reference_root(entries: &BTreeMap<Hash, Vec<u8>>) -> Hash {
        fn subtree(depth: usize, entries: &[(&Hash, &Vec<u8>)]) -> Hash {
            match entries {
                [] => EMPTY_ROOT,
                [(k, v)] => leaf_hash(k, &keccak256(&[v])),
                _ => {
                    let split = entries.partition_point(|(k, _)| bit(k, depth) == 0);
                    node_hash(&subtree(depth + 1, &entries[..split]), &subtree(depth + 1, &entries[split..]))
                }
            }
        }
        let list: Vec<_> = entries.iter().collect();
        subtree(0, &list)
    }

    #[test]
    fn empty_one_and_two_keys() {
        let mut tree = SparseMerkleTree::new();
        assert_eq!(tree.root(), EMPTY_ROOT);
        tree.insert(key(1), b"one".to_vec());
        assert_eq!(tree.root(), leaf_hash(&key(1), &keccak256(&[b"one"])));
        tree.insert(key(2), b"two".to_vec());
        assert_eq!(tree.len(), 2);
        assert_eq!(tree.get(&key(2)), Some(&b"two"[..]));
        assert_eq!(tree.get(&key(3)), None);
        tree.remove(&key(2));
        assert_eq!(tree.root(), leaf_hash(&key(1), &keccak256(&[b"one"])), "removing collapses back to the lone leaf");
        tree.remove(&key(1));
        assert_eq!((tree.root(), tree.len()), (EMPTY_ROOT, 0));
    }

    #[test]
    fn a_snapshot_is_unaffected_by_later_updates() {
        let mut tree = SparseMerkleTree::new();
        tree.apply((0..100).map(|i| (key(i), Some(vec![i as u8]))).collect());
        let snapshot = tree.clone();
        let root = snapshot.root();
        tree.apply((0..50).map(|i| (key(i), Some(vec![0xff]))).collect());
        assert_ne!(tree.root(), root);
        assert_eq!(snapshot.root(), root);
        assert_eq!(snapshot.get(&key(7)), Some(&[7u8][..]));
    }

    #[test]
    fn tampered_proofs_fail() {
        let mut tree = SparseMerkleTree::new();
        tree.apply((0..64).map(|i| (key(i), Some(vec![i as u8; 3]))).collect());
        let root = tree.root();
        let proof = tree.prove(&key(9));
        assert_eq!(proof.verify(&root), Ok(Some(&[9u8; 3][..])));
        let mut wrong_value = proof.clone();
        wrong_value.terminal = Terminal::Value(vec![9, 9, 8]);
        assert!(matches!(wrong_value.verify(&root), Err(ProofError::RootMismatch { .. })));
        let mut wrong_sibling = proof.clone();
        wrong_sibling.siblings[0][5] ^= 1;
        assert!(matches!(wrong_sibling.verify(&root), Err(ProofError::RootMismatch { .. })));
        let mut claims_absent = proof.clone();
        claims_absent.terminal = Terminal::Empty;
        assert!(matches!(claims_absent.verify(&root), Err(ProofError::RootMismatch { .. })));
        let mut other_key = proof.clone();
        other_key.key = key(10);
        assert!(other_key.verify(&root).is_err());
        // An absent key: its path ends in another leaf or an empty subtree; the proof verifies
        // as absent, and cannot be bent into a presence proof.
        let absent = tree.prove(&key(1000));
        assert_eq!(absent.verify(&root), Ok(None));
        let mut forged = absent.clone();
        forged.terminal = Terminal::Value(vec![1]);
        assert!(forged.verify(&root).is_err());
        let too_deep = StateProof { key: key(1), siblings: vec![[0; 32]; 257], terminal: Terminal::Empty };
        assert_eq!(too_deep.verify(&root), Err(ProofError::TooDeep(257)));
    }

    #[test]
    fn an_other_leaf_must_lie_on_the_path() {
        let mut tree = SparseMerkleTree::new();
        tree.apply((0..8).map(|i| (key(i), Some(vec![1]))).collect());
        let k = (100..).map(key).find(|k| matches!(tree.prove(k).terminal, Terminal::OtherLeaf { .. })).unwrap();
        let mut proof = tree.prove(&k);
        assert_eq!(proof.verify(&tree.root()), Ok(None));
        if let Terminal::OtherLeaf { key: other, .. } = &mut proof.terminal {
            *other = k;
        }
        assert_eq!(proof.verify(&tree.root()), Err(ProofError::OtherLeafIsKey));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any sequence of batches of inserts and removals gives the root the definition gives
        /// for the final key set (canonical: order does not matter), every key's proof
        /// verifies with its value, and absent keys prove absent.
        #[test]
        fn matches_the_definition_and_proves_every_key(
            batches in proptest::collection::vec(proptest::collection::vec((0u32..60, proptest::option::of(0u8..4)), 0..30), 1..8)
        ) {
            let mut tree = SparseMerkleTree::new();
            let mut model = BTreeMap::new();
            for batch in batches {
                let updates: Vec<Update> = batch.iter().map(|(k, v)| (key(*k), v.map(|v| vec![v]))).collect();
                for (k, v) in &updates {
                    match v {
                        Some(v) => { model.insert(*k, v.clone()); }
                        None => { model.remove(k); }
                    }
                }
                tree.apply(updates);
                prop_assert_eq!(tree.root(), reference_root(&model));
                prop_assert_eq!(tree.len(), model.len());
            }
            let root = tree.root();
            for i in 0..60 {
                let proof = tree.prove(&key(i));
                prop_assert_eq!(proof.verify(&root).unwrap(), model.get(&key(i)).map(|v| v.as_slice()));
                // The binary form round-trips exactly, and no prefix of it decodes.
                let bytes = proof.encode();
                prop_assert_eq!(StateProof::decode(&bytes), Some(proof.clone()));
                prop_assert!(StateProof::decode(&bytes[..bytes.len() - 1]).is_none());
            }
            let listed: Vec<(Hash, Vec<u8>)> = tree.iter().map(|(k, v)| (*k, v.to_vec())).collect();
            let expected: Vec<(Hash, Vec<u8>)> = model.into_iter().collect();
            prop_assert_eq!(listed, expected);
        }
    }
}
