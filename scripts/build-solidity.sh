#!/usr/bin/env bash
# Compile the bridge's Solidity contracts (crates/bridge/contracts) with npm solc, version
# pinned below, into crates/bridge/artifacts/. With --check, compile and compare with the
# committed artifacts instead (exit 1 if they differ): CI runs that. Installs the compiler
# (a self-contained npm package, no native code) under target/solc on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
SOLC_VERSION=0.8.37
PREFIX=target/solc
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node and npm are needed to compile the Solidity contracts: install Node.js (e.g. 'apt-get install nodejs npm')" >&2
    exit 1
fi
if [ "$(node -p "try { require('./$PREFIX/node_modules/solc/package.json').version } catch (e) { '' }")" != "$SOLC_VERSION" ]; then
    echo "installing npm solc@$SOLC_VERSION into $PREFIX"
    mkdir -p "$PREFIX"
    npm install --prefix "$PREFIX" --no-save --no-audit --no-fund --silent "solc@$SOLC_VERSION"
fi
node crates/bridge/scripts/compile.js "$PWD/$PREFIX/node_modules" crates/bridge/contracts crates/bridge/artifacts "$@"
