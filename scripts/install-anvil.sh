#!/usr/bin/env bash
# Install anvil (the root chain of the bridge's end-to-end tests) from npm, version pinned, under
# target/anvil, and print the binary's path. Exit 1 with a message if Node.js/npm are missing or
# the install fails (the tests that need anvil then say they skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
ANVIL_VERSION=1.7.1
PREFIX=target/anvil
BIN="$PREFIX/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
if [ ! -x "$BIN" ] || [ "$(node -p "try { require('./$PREFIX/node_modules/@foundry-rs/anvil/package.json').version } catch (e) { '' }" 2>/dev/null)" != "$ANVIL_VERSION" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "npm is needed to install anvil: install Node.js (e.g. 'apt-get install nodejs npm')" >&2
        exit 1
    fi
    echo "installing npm @foundry-rs/anvil@$ANVIL_VERSION into $PREFIX" >&2
    mkdir -p "$PREFIX"
    npm install --prefix "$PREFIX" --no-save --no-audit --no-fund --silent "@foundry-rs/anvil@$ANVIL_VERSION" >&2
fi
if [ ! -x "$BIN" ]; then
    echo "the anvil package installed no binary at $BIN (this platform may not be linux-amd64)" >&2
    exit 1
fi
echo "$PWD/$BIN"
