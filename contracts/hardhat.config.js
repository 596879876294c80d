// Only used to run a local JSON-RPC node for tests and scale runs (`npx hardhat node`).
// Contracts are compiled by build.js with the pinned solc-js, not by hardhat.
module.exports = {
  networks: {
    hardhat: {
      chainId: 31337,
      hardfork: "cancun",
      mining: { auto: true },
      // One funder with 1e9 ETH pays every party of a run.
      accounts: { count: 5, accountsBalance: "1000000000000000000000000000" },
      allowBlocksWithSameTimestamp: false,
    },
  },
  solidity: "0.8.37",
};
