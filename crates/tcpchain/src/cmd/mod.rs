pub mod beacon;
pub mod sim;
