"""Aggregation zones: homes of one phase grouped by electrical proximity on the radial LV
network, each zone between ``min_group_size`` and ``max_group_size`` homes."""

from __future__ import annotations

import numpy as np
import pandapower as pp
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import depth_first_order

from grid_models.errors import GridModelError
from sim.constants import MAX_GROUP_SIZE

PHASES = ("a", "b", "c")  # phase names, in the order of every per-phase array


def lv_dfs_order(net: pp.pandapowerNet, root: int) -> np.ndarray:
    """Buses of the radial LV network in depth-first order from ``root`` (bus labels)."""
    lines = net.line[net.line.in_service]
    buses = net.bus.index.to_numpy()
    pos = {b: i for i, b in enumerate(buses)}
    f = np.array([pos[b] for b in lines.from_bus])
    t = np.array([pos[b] for b in lines.to_bus])
    n = len(buses)
    graph = coo_matrix((np.ones(len(f)), (f, t)), shape=(n, n)).tocsr()
    order = depth_first_order(graph, pos[root], directed=False, return_predecessors=False)
    return buses[order]


def _zone_sizes(n: int, min_size: int, max_size: int, target: int) -> list[int]:
    lo = -(-n // max_size)  # ceil
    hi = n // min_size
    k = int(np.clip(round(n / target), lo, hi))
    base, extra = divmod(n, k)
    return [base + 1 if i < extra else base for i in range(k)]


def assign_zones(
    homes: pd.DataFrame,
    dfs_order: np.ndarray,
    min_group_size: int,
    max_group_size: int = MAX_GROUP_SIZE,
    target_group_size: int | None = None,
) -> tuple[pd.Series, pd.DataFrame]:
    """Group homes per phase into zones by electrical proximity.

    Homes of one phase are sorted by the depth-first position of their bus (so a zone covers
    one subtree or neighbouring subtrees) and cut into ``k`` contiguous chunks of near-equal size,
    with ``k`` closest to ``n / target_group_size`` such that every chunk has between
    ``min_group_size`` and ``max_group_size`` homes. Returns (zone per home, zones table).
    """
    if not 1 <= min_group_size <= max_group_size <= MAX_GROUP_SIZE:
        raise GridModelError(
            f"need 1 <= min_group_size ({min_group_size}) <= max_group_size ({max_group_size})"
            f" <= {MAX_GROUP_SIZE}",
            key="min_group_size",
        )
    target = target_group_size or 2 * min_group_size
    if not min_group_size <= target <= max_group_size:
        raise GridModelError(
            f"target_group_size {target} outside [{min_group_size}, {max_group_size}]",
            key="target_group_size",
        )
    rank = pd.Series(np.arange(len(dfs_order)), index=dfs_order)
    zone = pd.Series(-1, index=homes.index, dtype=int)
    rows = []
    for phase in PHASES:
        members = homes[homes.phase == phase]
        if members.empty:
            continue
        if len(members) < min_group_size:
            raise GridModelError(
                f"phase {phase} has {len(members)} homes, fewer than min_group_size "
                f"{min_group_size}: no zone can be formed",
                key="min_group_size",
            )
        order = members.index[np.argsort(rank[members.bus].to_numpy(), kind="stable")]
        start = 0
        for size in _zone_sizes(len(members), min_group_size, max_group_size, target):
            zone[order[start : start + size]] = len(rows)
            rows.append({"zone": len(rows), "phase": phase, "n_homes": size})
            start += size
    return zone, pd.DataFrame(rows)
