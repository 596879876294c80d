"""The mosaik co-simulation: the world's assembly (`world`), the thin simulator adapters over the
market's plain objects (`simulators`), and the simulators that run in their own processes
(`shard`: a shard of the HEMS fleet; `grid_process`: the grid's power flow)."""
