// Compile the bridge's Solidity sources with the pinned npm solc (standard JSON, EVM version
// prague) into one artifact per contract: ABI, creation and runtime bytecode, the compiler's
// version and the SHA-256 of the contract's own source, which `artifact_matches_sources` checks
// (every source is compiled together, so `--check` also catches a change to an imported one).
// `test/` holds contracts only the tests deploy (an attacker's payout recipient).
//
// usage: node compile.js <solc module dir> <contracts dir> <artifacts dir> [--check]
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

const [solcDir, contractsDir, artifactsDir, mode] = process.argv.slice(2);
const solc = require(path.join(solcDir, 'solc'));
const CONTRACTS = [
  ['TcpLightClient.sol', 'TcpLightClient'],
  ['PlasmaRoot.sol', 'PlasmaRoot'],
  ['test/PayoutAttacker.sol', 'PayoutAttacker'],
];

const sources = {};
for (const [file] of CONTRACTS) {
  sources[file] = { content: fs.readFileSync(path.join(contractsDir, file), 'utf8') };
}
const input = {
  language: 'Solidity',
  sources,
  settings: {
    evmVersion: 'prague',
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const problems = (output.errors || []).filter((e) => e.severity === 'error' || e.severity === 'warning');
for (const e of problems) console.error(e.formattedMessage);
if (problems.some((e) => e.severity === 'error')) process.exit(1);

let stale = false;
for (const [file, name] of CONTRACTS) {
  const content = sources[file].content;
  const contract = output.contracts[file][name];
  const artifact = {
    contract: name,
    compiler: `solc ${solc.version()}`,
    evm_version: 'prague',
    source: `contracts/${file}`,
    source_sha256: crypto.createHash('sha256').update(content).digest('hex'),
    abi: contract.abi,
    bytecode: contract.evm.bytecode.object,
    deployed_bytecode: contract.evm.deployedBytecode.object,
  };
  const text = JSON.stringify(artifact, null, 2) + '\n';
  const target = path.join(artifactsDir, `${name}.json`);
  if (mode === '--check') {
    const committed = fs.existsSync(target) ? fs.readFileSync(target, 'utf8') : '';
    if (committed !== text) {
      console.error(`${target} does not match what ${file} compiles to: run scripts/build-solidity.sh and commit the result`);
      stale = true;
    } else {
      console.log(`${target}: matches its source`);
    }
  } else {
    fs.writeFileSync(target, text);
    console.log(`built ${target} (${contract.evm.deployedBytecode.object.length / 2} bytes of runtime code)`);
  }
}
process.exit(stale ? 1 : 0);
