pub mod beacon;
pub mod bench;
pub mod client;
pub mod devnet;
pub mod init;
pub mod keys;
pub mod node;
pub mod sim;
