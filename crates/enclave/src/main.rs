//! `tcp-enclave`: the enclave process a compute node spawns (see `tcp_enclave::process`).

fn main() {
    std::process::exit(tcp_enclave::process::run(std::env::args().skip(1)));
}
