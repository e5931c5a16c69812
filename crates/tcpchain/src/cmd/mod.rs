pub mod beacon;
pub mod sim;
pub mod keys;
