// Compile contracts/src/*.sol with the pinned solc-js and write build/<Name>.json for every
// deployable contract (interfaces have no bytecode and get no artifact of their own: their ABI
// is part of the implementing contract's). Every interface must carry complete NatSpec (a
// @notice on every function, event and error, a @param for every parameter, a @return for
// every return value); the build fails otherwise.
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
    "*": {
      "*": [
        "abi",
        "evm.bytecode.object",
        "evm.deployedBytecode.object",
        "storageLayout",
        "metadata",
        "devdoc",
        "userdoc",
      ],
      "": ["ast"],
    },
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

function canonicalType(param) {
  if (!param.type.startsWith("tuple")) return param.type;
  return `(${param.components.map(canonicalType).join(",")})${param.type.slice(5)}`;
}

// NatSpec completeness of one interface, from solc's userdoc (notices) and devdoc (params,
// returns); returns what is missing, one line per item.
function missingNatspec(file, name, c) {
  const missing = [];
  const section = { function: "methods", event: "events", error: "errors" };
  for (const item of c.abi) {
    const kind = section[item.type];
    if (!kind) continue;
    const sig = `${item.name}(${item.inputs.map(canonicalType).join(",")})`;
    const where = `${file}: ${name}.${sig}`;
    // errors are documented as arrays (one entry per declaration with that signature)
    const first = (doc) => (Array.isArray(doc) ? doc[0] : doc) || {};
    const user = first((c.userdoc[kind] || {})[sig]);
    const dev = first((c.devdoc[kind] || {})[sig]);
    if (!user.notice) missing.push(`${where}: no @notice`);
    for (const input of item.inputs) {
      if (!(dev.params || {})[input.name]) missing.push(`${where}: no @param ${input.name}`);
    }
    (item.outputs || []).forEach((output, k) => {
      const key = output.name || `_${k}`;
      if (!(dev.returns || {})[key]) missing.push(`${where}: no @return for ${key}`);
    });
  }
  return missing;
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

  const contents = (u) => (sources[u] ? sources[u].content : findImport(u).contents);
  const interfaces = new Set();
  for (const f of files) {
    for (const node of output.sources[f].ast.nodes) {
      if (node.nodeType === "ContractDefinition" && node.contractKind === "interface") {
        interfaces.add(`${f}:${node.name}`);
      }
    }
  }
  const missing = [];
  for (const f of files) {
    for (const [name, c] of Object.entries(output.contracts[f])) {
      if (interfaces.has(`${f}:${name}`)) missing.push(...missingNatspec(f, name, c));
    }
  }
  for (const m of missing) console.error(`incomplete NatSpec: ${m}`);
  if (missing.length) process.exit(1);

  const artifacts = {};
  for (const f of files) {
    for (const [name, c] of Object.entries(output.contracts[f])) {
      if (!c.evm.bytecode.object) continue; // an interface (or abstract): no artifact of its own
      // Hash every file this contract was compiled from (solc's metadata lists them: its own
      // source, the interfaces it implements, the OpenZeppelin imports), so a change in any of
      // them makes the artifact stale.
      const sourceHashes = {};
      for (const u of Object.keys(JSON.parse(c.metadata).sources).sort()) {
        sourceHashes[u] = sha256(contents(u));
      }
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
