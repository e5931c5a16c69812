//! Parameters that would break the exit game are refused when the contract is deployed: no
//! challenge period, one not shorter than the freeze period, an absurd freeze period, a bond too
//! small to split between the challenger and the burn.

use crate::world::*;
use tcp_bridge::plasma::{self, BridgeParams};

#[test]
fn broken_parameters_do_not_deploy() {
    let mut w = World::new();
    let deploy = |w: &mut World, p: BridgeParams| w.l1.deploy(plasma::plasma_root_creation(&tcp_bridge::plasma_root().bytecode, CHAIN, &w.group.key(), &p));
    let good = params();
    assert!(deploy(&mut w, good).is_ok());
    for bad in [
        BridgeParams { challenge_period: 0, ..good },
        BridgeParams { challenge_period: good.freeze_period, ..good },
        BridgeParams { freeze_period: 3651 * 24 * 3600, ..good },
        BridgeParams { exit_bond: 1, ..good },
    ] {
        assert!(deploy(&mut w, bad).is_err(), "{bad:?} deployed");
    }
}
