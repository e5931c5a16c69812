#!/usr/bin/env bash
# Build the example contracts for wasm32-unknown-unknown into contracts/wasm/, with a MANIFEST
# (the sha256 of each .wasm and of the sources it was built from) that the test
# `contracts_match_their_sources` checks. Installs the wasm target if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    echo "installing the wasm32-unknown-unknown target"
    if ! rustup target add wasm32-unknown-unknown; then
        echo "cannot install wasm32-unknown-unknown: run 'rustup target add wasm32-unknown-unknown' on a machine whose rustup reaches static.rust-lang.org" >&2
        exit 1
    fi
fi
CONTRACTS="credit-score sealed-bid-auction psi-count aggregate-stats digest"
# Paths are remapped so the build does not depend on where the checkout lives.
# simd128: wasmtime compiles wasm SIMD to the host's vector instructions, as native code gets.
# initial-memory: 4 MiB from the start (1 MiB of it the stack), which the SDK's allocator uses
# before it grows memory; growing costs an mprotect now and another before the next call.
RUSTFLAGS="-C target-feature=+simd128 -C link-arg=--initial-memory=4194304 --remap-path-prefix=$PWD=/tcp --remap-path-prefix=$HOME/.cargo=/cargo" \
    cargo build --manifest-path contracts/Cargo.toml --release --target wasm32-unknown-unknown --target-dir target/contracts
mkdir -p contracts/wasm
: > contracts/wasm/MANIFEST
for c in $CONTRACTS; do
    wasm="contracts/wasm/${c//-/_}.wasm"
    cp "target/contracts/wasm32-unknown-unknown/release/${c//-/_}.wasm" "$wasm"
    # The sources: the SDK's and the contract's, with the manifests and the lock file.
    sources=$(cd contracts && find sdk/src "$c/src" -type f -name '*.rs' | LC_ALL=C sort; echo Cargo.toml; echo Cargo.lock; echo sdk/Cargo.toml; echo "$c/Cargo.toml")
    source_hash=$(cd contracts && for f in $sources; do sha256sum "$f"; done | sha256sum | cut -d' ' -f1)
    wasm_hash=$(sha256sum "$wasm" | cut -d' ' -f1)
    echo "$c $wasm_hash $source_hash" >> contracts/wasm/MANIFEST
    echo "built $wasm ($(stat -c %s "$wasm") bytes)"
done
