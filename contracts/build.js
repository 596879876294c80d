// Compile contracts/src/*.sol with the pinned solc-js and write build/<Name>.json.
// Usage: node build.js            write artifacts
//        node build.js --check    exit 1 if a committed artifact differs from a fresh build
"use strict";
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const solc = require("solc");

const SRC = path.join(__dirname, "src");
const OUT = path.join(__dirname, "build");
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  // A fork every backend supports: py-evm (eth-tester), hardhat node, pyrevm.
  evmVersion: "cancun",
  outputSelection: {
    "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "storageLayout"] },
  },
};

function sha256(text) {
  return crypto.createHash("sha256").update(text).digest("hex");
}

function findImport(importPath) {
  const candidate = path.join(__dirname, "node_modules", importPath);
  if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
  return { error: `import not found: ${importPath} (run npm ci in contracts/)` };
}

function build() {
  const files = fs.readdirSync(SRC).filter((f) => f.endsWith(".sol")).sort();
  const sources = {};
  for (const f of files) sources[f] = { content: fs.readFileSync(path.join(SRC, f), "utf8") };
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) console.error(e.formattedMessage);
  if (errors.length) process.exit(1);

  // Hash every compiled file (ours and the imported OpenZeppelin ones) so any change is caught.
  const sourceHashes = {};
  for (const u of Object.keys(output.sources).sort()) {
    sourceHashes[u] = sha256(sources[u] ? sources[u].content : findImport(u).contents);
  }
  const artifacts = {};
  for (const f of files) {
    for (const [name, c] of Object.entries(output.contracts[f])) {
      artifacts[name] = {
        contractName: name,
        sourceFile: `src/${f}`,
        sourceSha256: sha256(sources[f].content),
        allSourcesSha256: sourceHashes,
        compiler: { name: "solc-js", version: solc.version() },
        settings: { optimizer: SETTINGS.optimizer, evmVersion: SETTINGS.evmVersion },
        abi: c.abi,
        bytecode: "0x" + c.evm.bytecode.object,
        deployedBytecode: "0x" + c.evm.deployedBytecode.object,
        storageLayout: c.storageLayout,
      };
    }
  }
  return artifacts;
}

const check = process.argv.includes("--check");
const artifacts = build();
let stale = 0;
fs.mkdirSync(OUT, { recursive: true });
for (const [name, art] of Object.entries(artifacts)) {
  const file = path.join(OUT, `${name}.json`);
  const text = JSON.stringify(art, null, 2) + "\n";
  if (check) {
    const old = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
    if (old !== text) {
      console.error(`stale artifact: build/${name}.json (run: cd contracts && npm run build)`);
      stale += 1;
    }
  } else {
    fs.writeFileSync(file, text);
    console.log(`wrote build/${name}.json (${art.compiler.version})`);
  }
}
process.exit(stale ? 1 : 0);
