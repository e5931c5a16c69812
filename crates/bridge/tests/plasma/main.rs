//! `PlasmaRoot.sol` in revm against TCP's own bridge state: the whole path, then one file per
//! attack (the habit of OMG's plasma-contracts), then random sequences. `world.rs` joins the two
//! chains. Prints the gas figures (`--nocapture`).

mod world;

mod a_deposit_confused_with_a_checkpoint;
mod bad_parameters_are_refused_at_deployment;
mod censoring_the_inbox_freezes_the_bridge;
mod challenge_not_later_or_not_for_that_account;
mod checkpoint_heights_going_backwards;
mod checkpoint_replay_across_chains_and_contracts;
mod committee_equivocation_freezes_the_bridge;
mod deposit_transfer_withdraw_exit;
mod double_exit;
mod equivocation_after_payouts_does_not_roll_back;
mod exit_after_spend;
mod exit_not_bound_to_its_owner;
mod exit_priority_griefing;
mod front_running_a_challengers_bond;
mod funds_received_during_an_exit_then_a_freeze;
mod malformed_and_non_canonical_proofs;
mod random_sequences_never_pay_twice;
mod reentrancy_on_payouts;
mod reverting_payout_blocks_no_one;
mod withheld_data_exit_after_the_freeze;
