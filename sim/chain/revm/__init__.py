"""A fast embedded chain: revm (the Rust EVM, through pyrevm) behind a web3 JSON-RPC provider.

- `engine.py`: the EVM, its state and journal, the transaction pool, blocks and mining;
- `transactions.py`: arriving transactions: raw ones decoded, in-process ones handed over as
  fields, signature and sender checked, the pool's admission checks;
- `receipts.py`: execution records (outcome, logs, place in a block) and their JSON-RPC forms;
- `provider.py`: `RevmProvider`, the web3 provider answering JSON-RPC methods from an engine in
  the same process (the `revm` backend of `sim.chain.connection.connect`);
- `node.py`: the same provider served over HTTP JSON-RPC on 127.0.0.1
  (`python -m sim.chain.revm.node`), for several processes.

Chain model: deterministic dev accounts funded at genesis (eth_accounts, eth_sendTransaction),
raw transactions signed by the parties (EIP-1559 type 2, EIP-2930 type 1 and EIP-155 legacy; the
sender is recovered from the signature, chain id and nonce are checked). Blocks are mined as on
hardhat: auto-mine puts each transaction in its own block; `evm_setAutomine false` queues
transactions until `evm_mine`, which takes them in arrival order while a transaction's gas limit
fits the gas the block has left (as geth), and leaves the rest for the next block. A block's
timestamp is the one given to `evm_mine` or else its parent's plus one second, so runs are
reproducible and chain time moves only where the co-simulation moves it. Only the latest state
is kept (no historical eth_call). Block hashes are a keccak over (parent hash, number,
timestamp, transaction hashes); state, transaction and receipt roots are not computed (reported
as zero).
"""
