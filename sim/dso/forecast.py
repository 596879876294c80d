"""The DSO's own demand forecast per site: public information only, never a home's data.

* Ordinary homes: a load-research profile (kW per home), the mean of synthetic households
  drawn independently of the simulated homes (richardsonpy, the same generator the homes use,
  other seeds), times the number of ordinary homes at each site.
* HEMS homes: the last round's dispatched group totals (the DSO knows each group's revealed
  [Lmin, Lmax] and its own lambda) spread over the member sites by the public weights; before
  the first round, the load-research profile. (Linearizing at the revealed Lmax instead was
  tried: with homes that can draw 10 kW each, that point is often beyond voltage collapse and
  its sensitivities are meaningless.)
* Reactive power: every home's household load at the DSO's forecast power factor (homes draw
  reactive power with their load and HVAC, not with PV, battery or export), corrected by the
  substation meter: after each slot the DSO compares the feeder's measured draw (total over
  the three phases, kW and kvar) with what its own AC check of the dispatch expected, and
  carries the difference forward, spread equally over the homes (reactive power, which the
  homes' bids do not reveal) or the ordinary homes (active power, which only they leave
  unrevealed). The meter sums the whole feeder: no home's data.
"""

from __future__ import annotations

import numpy as np

from grid_models import Feeder

RESEARCH_SEED = 1_000_003  # households of the load-research sample: not among the homes


def load_research_profile_kw(
    start_day: int, n_days: int, slot_s: int, ghi_w_m2: np.ndarray, n_households: int = 6
) -> np.ndarray:
    """Mean electric load of a sample of synthetic households (kW per home, per slot)."""
    from sim.hems.data import household_days

    profiles = [
        household_days(RESEARCH_SEED + i, 1 + i % 5, start_day, n_days, ghi_w_m2, slot_s)[0]
        for i in range(n_households)
    ]
    return np.mean(profiles, axis=0)


class DSOForecaster:
    """Per-site forecasts for the DSO's two stages (kW)."""

    def __init__(
        self,
        feeder: Feeder,
        smart: np.ndarray,
        weights: np.ndarray,
        group_sizes: np.ndarray,
        profile_kw: np.ndarray,
    ) -> None:
        """`smart` flags HEMS homes (feeder.homes order); `weights` is sites x groups and
        `group_sizes` the members of each group (both public, in the DSO's group order)."""
        self.profile_kw = np.asarray(profile_kw, dtype=float)
        self.weights = weights
        self.group_sizes = np.asarray(group_sizes, dtype=float)
        self.ordinary_per_site = feeder.site_totals((~smart).astype(float))
        self.homes_per_site = feeder.site_totals(np.ones(len(smart)))
        self.hems_per_site = self.homes_per_site - self.ordinary_per_site
        self._last_group_kw: np.ndarray | None = None
        self.n_homes = len(smart)
        self.n_ordinary = int((~smart).sum())
        self.q_bias_kvar_per_home = 0.0  # from the substation meter (observe_substation)
        self.p_bias_kw_per_ordinary_home = 0.0

    def ordinary_kw(self, slot: int) -> np.ndarray:
        """Ordinary homes' demand per site in `slot` (kW), corrected by the substation meter."""
        return self.ordinary_per_site * (self.profile_kw[slot] + self.p_bias_kw_per_ordinary_home)

    def reactive_kvar(self, slot: int, tan_phi: float, hems: bool = True) -> np.ndarray:
        """Reactive demand per site in `slot` (kvar) of every home (or, with `hems=False`, of
        the ordinary homes only): household load at ``tan_phi`` plus the meter's correction."""
        homes = self.homes_per_site if hems else self.ordinary_per_site
        return homes * (tan_phi * self.profile_kw[slot] + self.q_bias_kvar_per_home)

    def observe_substation(
        self,
        measured_p_kw: np.ndarray,
        measured_q_kvar: np.ndarray,
        expected_p_kw: np.ndarray,
        expected_q_kvar: np.ndarray,
        gain: float = 1.0,
    ) -> None:
        """Carry forward the substation meter's difference from the DSO's own expectation of
        the slot it dispatched (kW, kvar per phase; totals are compared, since a Dyn
        transformer mixes the phases)."""
        dq = float(np.sum(measured_q_kvar) - np.sum(expected_q_kvar))
        self.q_bias_kvar_per_home += gain * dq / max(self.n_homes, 1)
        if self.n_ordinary:
            dp = float(np.sum(measured_p_kw) - np.sum(expected_p_kw))
            self.p_bias_kw_per_ordinary_home += gain * dp / self.n_ordinary

    def group_kw(self, slot: int, use_dispatch: bool = True) -> np.ndarray:
        """HEMS demand per group in `slot` (kW): the last dispatch, else the profile."""
        if use_dispatch and self._last_group_kw is not None:
            return self._last_group_kw
        return self.group_sizes * self.profile_kw[slot]

    def total_kw(self, slot: int, use_dispatch: bool = True) -> np.ndarray:
        """All homes' demand per site in `slot` (kW), the linearization point of stage 1;
        `use_dispatch=False` forecasts HEMS homes by the load-research profile alone."""
        return self.ordinary_kw(slot) + self.weights @ self.group_kw(slot, use_dispatch)

    def observe_dispatch(self, group_cap_kw: np.ndarray) -> None:
        """Remember the dispatched group totals (kW, group order of the weights)."""
        self._last_group_kw = np.asarray(group_cap_kw, dtype=float).copy()
