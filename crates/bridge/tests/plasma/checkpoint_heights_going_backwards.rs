//! Heights never go backwards: a checkpoint must be higher than the latest, so a withheld older
//! one cannot be relayed later to roll the contract's view back.

use crate::world::*;

#[test]
fn an_older_or_equal_height_is_refused() {
    let mut w = World::new();
    let older = w.make_checkpoint();
    let newer = w.make_checkpoint();
    assert!(w.send(w.relayer, 0, newer.calldata()).is_success());
    assert_eq!(reverted(&w.send(w.relayer, 0, older.calldata())), Some("HeightNotAfterLatest"));
    assert_eq!(reverted(&w.send(w.relayer, 0, newer.calldata())), Some("HeightNotAfterLatest"));
    let next = w.make_checkpoint();
    assert!(w.send(w.relayer, 0, next.calldata()).is_success());
}
