"""Checkpoints of a run, so that `blockhems run --resume DIR` continues it where it stopped.

Two files per round, each written by the side that finishes that part of the slot:

    checkpoint/homes-<R>.npz   after the homes' dispatch of round R-1: the fleet's states (the
                               whole fleet's: every shard models it and ends the same) and the
                               generator of the homes' dropouts
    checkpoint/dso-<R>.npz     at the DSO's price phase of round R, after it read the
                               substation meter of round R-1 and before it posts the prices: its
                               forecaster, the last lambdas and the solutions its QPs
                               warm-start from

A run resumes at the latest round R for which both files exist and whose slots 0..R-1 are all
in the slots table (`resume_round`). Written every slot, each atomically (a temporary name,
then a rename); the two latest of each side are kept, since the homes' file of the next round
is written before the DSO's.

Nothing of the chain and no key is kept: a resumed run deploys a new contract and registers
the homes with new keys (the results do not depend on them: tests/test_keys.py), and opens its
rounds from R on. The files hold arrays and a JSON header only (``numpy.load`` with
``allow_pickle=False``): opening a results folder runs no code from it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from sim.errors import BlockhemsError

FORMAT = 1  # the layout of a checkpoint file; a file of another layout is refused
FOLDER = "checkpoint"
COMPONENTS = ("homes", "dso")
_META = "__meta__"
_NAME = re.compile(r"^(homes|dso)-(\d{6})\.npz$")


class ResumeError(BlockhemsError, RuntimeError):
    """A run cannot be resumed from its folder (no checkpoint, a damaged one, a finished run)."""


def homes_state(agent: Any) -> dict[str, Any]:
    """A `HomesAgent`'s state between slots (its fleet's and the dropout generator's)."""
    state = {f"fleet/{k}": v for k, v in agent.fleet.state().items()}
    state["dropout_rng"] = agent._rng.bit_generator.state
    return state


def restore_homes(agent: Any, state: dict[str, Any]) -> None:
    shape = np.shape(state["fleet/last_p_kw"])
    if shape != (agent.fleet.n_homes,):
        raise ResumeError(
            f"the checkpoint is of a run with {shape[0] if shape else 0} homes, this scenario "
            f"has {agent.fleet.n_homes}: the folder's scenario.yaml changed since it was written"
        )
    agent.fleet.restore({k[6:]: v for k, v in state.items() if k.startswith("fleet/")})
    agent._rng.bit_generator.state = state["dropout_rng"]


def dso_state(agent: Any) -> dict[str, Any]:
    """A `DSOAgent`'s state before it posts a round's prices."""
    forecaster = agent.forecaster
    state = {f"dso/{k}": v for k, v in agent.dso.solver_state().items()}
    state["group_ids"] = [int(g) for g in agent.group_ids]
    state["last_lambda"] = {str(g): lam for g, lam in agent._last_lam.items()}
    state["last_bands"] = agent.posted_bands
    state["forecaster/last_group_kw"] = forecaster._last_group_kw
    state["forecaster/q_bias_kvar_per_home"] = forecaster.q_bias_kvar_per_home
    state["forecaster/p_bias_kw_per_ordinary_home"] = forecaster.p_bias_kw_per_ordinary_home
    return state


def restore_dso(agent: Any, state: dict[str, Any]) -> None:
    groups = [int(g) for g in agent.group_ids]
    if state.get("group_ids") != groups:
        raise ResumeError(
            f"the checkpoint is of a run with aggregation groups {state.get('group_ids')}, this "
            f"scenario has {groups}: the folder's scenario.yaml changed since it was written"
        )
    agent.dso.restore_solver_state({k[4:]: v for k, v in state.items() if k.startswith("dso/")})
    agent._last_lam = {int(g): float(lam) for g, lam in state["last_lambda"].items()}
    bands = state["last_bands"]
    agent.posted_bands = None if bands is None else np.asarray(bands, dtype=float)
    forecaster = agent.forecaster
    last = state["forecaster/last_group_kw"]
    forecaster._last_group_kw = None if last is None else np.asarray(last, dtype=float)
    forecaster.q_bias_kvar_per_home = float(state["forecaster/q_bias_kvar_per_home"])
    forecaster.p_bias_kw_per_ordinary_home = float(state["forecaster/p_bias_kw_per_ordinary_home"])


class Checkpoints:
    """The checkpoint files of one results folder."""

    def __init__(self, out_dir: str | Path) -> None:
        self.folder = Path(out_dir) / FOLDER

    def path(self, component: str, round_: int) -> Path:
        return self.folder / f"{component}-{round_:06d}.npz"

    def save(self, component: str, round_: int, state: dict[str, Any]) -> None:
        """Write `state` (names to arrays or JSON values) as `component`'s checkpoint of the
        start of round `round_`, atomically; drop that side's files older than the one before."""
        if component not in COMPONENTS:
            raise ValueError(f"unknown checkpoint component {component!r}")
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
        meta = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
        header = {"format": FORMAT, "component": component, "round": int(round_), "state": meta}
        target = self.path(component, round_)
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as out:
            np.savez(out, **arrays, **{_META: np.array(json.dumps(header))})
        os.replace(tmp, target)
        for old in self.rounds(component):
            if old < round_ - 1:
                self.path(component, old).unlink(missing_ok=True)

    def rounds(self, component: str) -> list[int]:
        """The rounds `component` has a checkpoint of, rising."""
        if not self.folder.is_dir():
            return []
        found = (_NAME.match(f.name) for f in self.folder.iterdir())
        return sorted(int(m[2]) for m in found if m and m[1] == component)

    def load(self, component: str, round_: int) -> dict[str, Any]:
        path = self.path(component, round_)
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data[_META]))
                arrays = {k: data[k] for k in data.files if k != _META}
        except (OSError, ValueError, KeyError, EOFError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "damaged"
            raise ResumeError(
                f"checkpoint {path} cannot be read ({why}: not a checkpoint blockhems wrote); "
                "remove it to resume from the one before"
            ) from None
        if header.get("format") != FORMAT or header.get("round") != round_:
            raise ResumeError(
                f"checkpoint {path} is of format {header.get('format')!r} for round "
                f"{header.get('round')!r}, expected format {FORMAT} for round {round_}"
            )
        return {**header["state"], **arrays}

    def resume_round(self, finished: list[int], n_slots: int) -> int:
        """The round a resumed run starts at: the latest with both checkpoints whose earlier
        slots are all finished (`finished`: the rounds in the slots table)."""
        done = set(finished)
        complete = 0
        while complete in done:
            complete += 1
        if complete >= n_slots:
            raise ResumeError(
                f"the run in {self.folder.parent} finished all {n_slots} slots: nothing to resume"
            )
        both = set(self.rounds("homes")) & set(self.rounds("dso"))
        usable = [r for r in both if 1 <= r <= complete]
        if not usable:
            raise ResumeError(
                f"{self.folder.parent} holds no checkpoint to resume from ({complete} of "
                f"{n_slots} slots finished; checkpoints are written from the end of the "
                "first slot on, by `blockhems run` from this version on): run it again"
            )
        return max(usable)

    def clear(self) -> None:
        """Remove the checkpoints (a run that finished needs none)."""
        shutil.rmtree(self.folder, ignore_errors=True)
