"""The two sides of a timeslot, as plain objects that talk only through the chain.

`DSOAgent` posts the price bands (stage 1) and clears lambda from the revealed group sums
(stage 2). `HomesAgent` runs a fleet of homes: it reads the bands, computes and submits the
masked ranges, sends the survivors' recovery words, reads its groups' lambdas and
dispatches. Neither holds a reference to the other; the mosaik simulators are thin adapters
over these.

Units: kW in the models, integer W on chain, $/kWh for prices.
"""

from __future__ import annotations

import numpy as np

from grid_models import PowerFlowError
from sim.chain.private import DSOClient, HomeClient, Status
from sim.chain.units import kw_to_w, lambda_as_posted
from sim.dso import DSO, DSOError
from sim.dso.forecast import DSOForecaster
from sim.hems import HEMSFleet
from sim.protocol import dispatch_cap


class DSOAgent:
    """The DSO of one feeder: prices, then lambda, through the chain only."""

    def __init__(
        self,
        dso: DSO,
        client: DSOClient,
        forecaster: DSOForecaster,
        energy_price: list[float],
        mode: str = "single",
        slot_h: float = 0.25,
    ) -> None:
        self.dso = dso
        self.slot_h = slot_h
        self.client = client
        self.forecaster = forecaster
        self.energy_price = energy_price  # $/kWh per slot of the run
        self.mode = mode
        self.group_ids = [int(g) for g in dso.group_ids]
        self.stage1 = None
        self.stage2 = None
        self.aggregates: dict[int, object] = {}

    def post_prices(self, round_: int, slot: int, deadline: int) -> None:
        """Stage 1 on the DSO's forecast, then one price band per group on chain.

        When the last dispatch is so far outside the limits that the OPF linearized there
        has no solution, the DSO falls back to its load-research forecast for the HEMS homes
        (recorded as `stage1_fallback`).
        """
        price = self.energy_price[round_]
        self.stage1_fallback = False
        try:
            self.stage1 = self.dso.stage1(self.forecaster.total_kw(slot), price, slot=slot)
        except (DSOError, PowerFlowError):
            self.stage1_fallback = True
            forecast = self.forecaster.total_kw(slot, use_dispatch=False)
            self.stage1 = self.dso.stage1(forecast, price, slot=slot)
        bands = {
            group: (float(self.stage1.p_low[g]), float(self.stage1.p_high[g]))
            for g, group in enumerate(self.group_ids)
        }
        self.client.open_rounds(round_, bands, deadline)

    def clear(self, round_: int, slot: int) -> float:
        """Read the group sums, solve stage 2, post lambda; returns lambda."""
        lmin = np.zeros(len(self.group_ids))
        lmax = np.zeros(len(self.group_ids))
        fallback = self.forecaster.group_kw(slot)
        self.aggregates = {}
        statuses = self.client.contract.statuses(round_, self.group_ids)  # one request
        for g, group in enumerate(self.group_ids):
            status = statuses[group]
            aggregate = (
                self.client.read_aggregate(round_, group) if status == Status.COMPLETE else None
            )
            self.aggregates[group] = aggregate
            if aggregate is not None:
                lmin[g], lmax[g] = aggregate.lower_w / 1000.0, aggregate.upper_w / 1000.0
            else:
                # A failed group revealed nothing: plan it as inflexible at the forecast.
                lmin[g] = lmax[g] = fallback[g]
        self.stage2 = self.dso.stage2(
            lmin,
            lmax,
            self.stage1.p_low,
            self.stage1.p_high,
            self.forecaster.ordinary_kw(slot),
            mode=self.mode,
            slot=slot,
        )
        lam = float(self.stage2.lam)
        self.client.post_lambda(round_, lam)
        # the group totals the homes dispatch at the lambda they read back from the chain
        self.forecaster.observe_dispatch(dispatch_cap(lambda_as_posted(lam), lmin, lmax))
        self.group_lmin_kw, self.group_lmax_kw = lmin, lmax
        return lam


class HomesAgent:
    """A fleet of homes on the chain: the whole fleet's model, the chain work of `clients`.

    `clients` maps a home index (fleet order) to its chain client; only HEMS homes have one,
    and a shard of the fleet has only its own homes' clients.
    `slot_offset` maps a round to the fleet's slot index (the run may start mid-day).
    """

    def __init__(
        self,
        fleet: HEMSFleet,
        clients: dict[int, HomeClient],
        groups: dict[int, list[int]],
        slot_offset: int,
        dropout_probability: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.fleet = fleet
        self.clients = clients
        # every HEMS home by group: a shard models the whole fleet, so it reads every group's
        # public band, not only its own homes'
        self.groups = {int(g): [int(h) for h in members] for g, members in groups.items()}
        self.group_of = {h: g for g, members in self.groups.items() for h in members}
        self.own_groups = sorted({self.group_of[i] for i in clients})
        # the contract every client talks to (one deployment), None without clients
        self._contract = next(iter(clients.values())).contract if clients else None
        self.slot_offset = slot_offset
        self.dropout_probability = dropout_probability
        self._rng = np.random.default_rng(seed)
        self.lmin_kw = np.zeros(fleet.n_homes)
        self.lmax_kw = np.zeros(fleet.n_homes)
        self.p_low = np.zeros(fleet.n_homes)
        self.p_high = np.zeros(fleet.n_homes)
        self.submitted = np.zeros(fleet.n_homes, dtype=bool)
        self.cap_kw = np.zeros(fleet.n_homes)
        self.import_kw = np.zeros(fleet.n_homes)
        self.q_kvar = np.zeros(fleet.n_homes)
        self.lam = float("nan")

    def submit(self, round_: int) -> None:
        """Read each home's band, compute [Lmin, Lmax] and submit the masked bounds."""
        slot = round_ + self.slot_offset
        bands = self._contract.price_bands(round_, list(self.groups))  # public; one request
        for group, members in self.groups.items():
            self.p_low[members], self.p_high[members] = bands[group].p_low, bands[group].p_high
        self.lmin_kw, self.lmax_kw = self.fleet.compute_ranges(slot, self.p_low, self.p_high)
        # Drawn for the whole fleet, so that every shard draws the same dropouts.
        drops = self._rng.random(self.fleet.n_homes) < self.dropout_probability
        lower_w, upper_w = kw_to_w(self.lmin_kw), kw_to_w(self.lmax_kw)
        senders = [i for i in self.clients if not drops[i]]
        if senders:  # one batch: a few blocks per slot, not one round trip per home
            self._contract.chain.transact_many(
                [self.clients[i].range_request(round_, lower_w[i], upper_w[i]) for i in senders]
            )
        # Every HEMS home not dropped submits (this shard's and the others'; a refused batch
        # raised above), so the fleet's figures are the same in every shard.
        self.submitted[:] = self.fleet.smart & ~drops

    def recover(self, round_: int) -> int:
        """Send the recovery words of this agent's survivors (self-mask removed, masks with
        dropped members cancelled); returns how many were sent. A home that did not submit
        sends nothing: its self-mask is never revealed."""
        requests = []
        states = self._contract.round_states(round_, self.own_groups) if self.clients else {}
        for i, client in self.clients.items():
            state = states[self.group_of[i]]
            if self.submitted[i] and state.status == Status.RECOVERY:
                if client.needs_recovery(round_, state):
                    requests.append(client.recovery_request(round_, state))
        if requests:
            self._contract.chain.transact_many(requests)
        return len(requests)

    def dispatch(self, round_: int) -> None:
        """Read each group's lambda, cap every HEMS home at P = lam*Lmax + (1-lam)*Lmin with
        its group's lambda and run the slot."""
        slot = round_ + self.slot_offset
        lam_home = np.full(self.fleet.n_homes, np.nan)
        if self._contract is not None:  # public values; one request for every group
            for group, lam in self._contract.lambdas(round_, list(self.groups)).items():
                lam_home[self.groups[group]] = lam
        first = next(iter(self.clients), None)
        self.lam = float(lam_home[first]) if first is not None else float("nan")
        cap = dispatch_cap(lam_home, self.lmin_kw, self.lmax_kw)
        self.cap_kw = np.where(self.fleet.smart, cap, np.inf)
        self.import_kw = self.fleet.dispatch(slot, self.cap_kw)
        self.q_kvar = self.fleet.last_q_kvar

    def warm_up(self, price_usd_per_kwh: np.ndarray) -> None:
        """Run the homes on their own (no cap) from midnight to the first market slot, so a
        run that starts mid-day starts from realistic states."""
        for slot in range(self.slot_offset):
            price = float(price_usd_per_kwh[slot])
            _, lmax = self.fleet.compute_ranges(slot, price, price)
            self.fleet.dispatch(slot, np.where(self.fleet.smart, lmax, np.inf))
