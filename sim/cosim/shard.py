"""A shard of the HEMS fleet as its own mosaik simulator process.

    python -m sim.cosim.shard HOST:PORT      (mosaik starts it; see SIM_CONFIG["HomesShard"])

The shard gets plain parameters over mosaik's socket: the resolved scenario (YAML), its homes,
the chain's JSON-RPC url, the contract and registrar addresses, and its own HEMS homes' keys
(generated at random by the main process; the only secrets a shard gets, never logged or
written to results). It builds the scenario's whole fleet (the
same homes, by seed, as any other process) and trains it, and does the chain work only for its
own HEMS homes: it masks, signs and sends their submissions and recovery words. It reports its
homes' demand to the grid, its homes' rows and transactions to the recorder and, the lead shard
only, the fleet's columns of the slot row. The
heavy set-up (and its imports: web3, pandapower, cvxpy) runs at the shard's first step, so that
all shards build at the same time, and so that connecting to mosaik and answering its init call
(timed by mosaik's start timeout) take only the import of mosaik_api_v3 and numpy, however
busy the machine. It ends with the run (`sim.children`).
"""

from __future__ import annotations

import time as wallclock
from functools import partial

from sim.children import guard_child

if __name__ == "__main__":
    guard_child()  # before the imports below: a Ctrl-C or a dead parent ends it quietly

import mosaik_api_v3  # noqa: E402

from sim.cosim.simulators import STEP_S, HomesSim  # noqa: E402


class HomesShardSim(HomesSim):
    def setup(
        self,
        scenario_yaml: str,
        n_homes: int,
        home_ids: list[int],
        groups: list,
        url: str,
        contract: str,
        registrar: str,
        home_keys: list,
        lead: bool,
        name: str,
        checkpoint_dir: str | None = None,
        resume_round: int = 0,
    ) -> None:
        from sim.market.checkpoint import Checkpoints

        self.name = name
        # every shard models the whole fleet and ends each slot in the same state: the lead
        # shard writes the homes' checkpoint, and every shard of a resumed run reads it
        folder = None if checkpoint_dir is None else Checkpoints(checkpoint_dir)
        self.checkpoints = folder if lead else None
        self._resume = (folder, resume_round) if folder is not None and resume_round else None
        self._pending = dict(
            scenario_yaml=scenario_yaml,
            n_homes=n_homes,
            groups={int(g): members for g, members in groups},
            url=url,
            contract=contract,
            registrar=registrar,
            home_keys=home_keys,
        )
        self.home_ids = [int(h) for h in home_ids]
        self._lead = lead
        self.agent = None
        self.setup_s = 0.0

    def _build(self, scenario_yaml, n_homes, groups, url, contract, registrar, home_keys) -> None:
        start = wallclock.perf_counter()
        import yaml

        from sim.chain.connection import connect
        from sim.chain.deployment import attach_homes
        from sim.chain.keys import PartyKeys
        from sim.market.setup import build_fleet, homes_agent
        from sim.results.tables import homes_rows
        from sim.scenario import parse_scenario

        self.table_rows = partial(homes_rows, home_ids=self.home_ids, summary=self._lead)
        scenario = parse_scenario(yaml.safe_load(scenario_yaml), f"{self.name} scenario")
        fleet = build_fleet(scenario, n_homes)
        fleet.train()
        self.chain = chain = connect("rpc", url, scenario.chain.rpc_timeout_s, shared=True)
        self._reported = 0
        keys = {int(h): PartyKeys.from_export(k) for h, k in home_keys}
        clients = attach_homes(chain, contract, keys, registrar)
        self.agent = homes_agent(scenario, fleet, clients, groups)
        if self._resume is not None:
            from sim.market.checkpoint import restore_homes

            checkpoints, first_round = self._resume
            restore_homes(self.agent, checkpoints.load("homes", first_round))
        self.setup_s = wallclock.perf_counter() - start

    def act(self, round_: int, phase: str, inputs: dict) -> None:
        if self.agent is None:
            self._build(**self._pending)
        super().act(round_, phase, inputs)
        if phase == "dispatch":
            # this process's transactions (the chain simulator sees only the main process's)
            new = self.chain.records[self._reported :]
            self._reported = len(self.chain.records)
            self.outputs["records"]["transactions"] = [r.as_dict() for r in new]
            stepped = sum(self.timings.values())
            self.outputs["records"][STEP_S] = {
                self.name: stepped - self.setup_s,
                f"{self.name} setup": self.setup_s,
            }


def main() -> None:
    mosaik_api_v3.start_simulation(HomesShardSim(), "blockhems HEMS shard")


if __name__ == "__main__":
    main()
