"""The two sides of a timeslot, as plain objects that talk only through the chain.

`DSOAgent` posts the price bands (stage 1) and clears lambda from the revealed group sums
(stage 2). `HomesAgent` runs a fleet of homes: it reads the bands, computes and submits the
masked ranges, sends the survivors' recovery words, reads its groups' lambdas and
dispatches. Neither holds a reference to the other; the mosaik simulators are thin adapters
over these.

Units: kW in the models, integer W on chain, $/kWh for prices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grid_models import PowerFlowError
from sim.chain.private import DSOClient, GroupAggregate, HomeClient, Status
from sim.chain.units import kw_to_w, lambda_as_posted, w_to_kw
from sim.dso import DSO, DSOError
from sim.dso.forecast import DSOForecaster
from sim.hems import HEMSFleet
from sim.protocol import dispatch_cap


@dataclass(frozen=True)
class RevealedBid:
    """What the DSO learns of a group in a round: the sum of its homes' bids (W at each price
    of the ladder, rising prices, so Lmax first) and how many homes it sums."""

    points_w: tuple[int, ...]
    contributors: int

    @classmethod
    def from_aggregate(cls, aggregate: GroupAggregate) -> RevealedBid:
        """The contract's two sums ([Lmin, Lmax]) of a group."""
        return cls((aggregate.upper_w, aggregate.lower_w), aggregate.contributors)


class DSOAgent:
    """The DSO of one feeder: prices, then lambda, through the chain only."""

    def __init__(
        self,
        dso: DSO,
        client: DSOClient | None,
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
        self.q_model = "load"
        self.stage1 = None
        self.stage2 = None
        self.aggregates: dict[int, object] = {}

    def plan_bands(self, round_: int, slot: int) -> dict[int, tuple[float, ...]]:
        """Stage 1 on the DSO's forecast: every group's price ladder ($/kWh, rising), the
        prices at which its homes bid (two, the band ``(p_low, p_high)``, in the paper's
        design).

        When the last dispatch is so far outside the limits that the OPF linearized there
        has no solution, the DSO falls back to its load-research forecast for the HEMS homes
        (recorded as `stage1_fallback`).
        """
        price = self.energy_price[round_]
        self.stage1_fallback = False
        q_kvar = self._q_kvar(slot)
        try:
            forecast = self.forecaster.total_kw(slot)
            self.stage1 = self.dso.stage1(forecast, price, q_kvar, slot=slot)
        except (DSOError, PowerFlowError):
            self.stage1_fallback = True
            forecast = self.forecaster.total_kw(slot, use_dispatch=False)
            self.stage1 = self.dso.stage1(forecast, price, q_kvar, slot=slot)
        self.ladders = self.ladder(self.stage1.p_low, self.stage1.p_high)
        return {
            group: tuple(float(p) for p in self.ladders[g])
            for g, group in enumerate(self.group_ids)
        }

    def _q_kvar(self, slot: int, hems: bool = True) -> np.ndarray | None:
        """Reactive demand (kvar per site) of all homes (``hems=False``: of the ordinary homes)
        in the forecaster's model; None with the older model ``q_model = "power_factor"``
        (q follows net import at a fixed power factor)."""
        if self.q_model == "power_factor":
            return None
        return self.forecaster.reactive_kvar(slot, self.dso.tan_forecast, hems)

    def observe_substation(self, p_kw: np.ndarray, q_kvar: np.ndarray) -> None:
        """The substation meter's reading (kW, kvar per phase) of the slot just dispatched."""
        if self.stage2 is not None and self.q_model != "power_factor":
            self.forecaster.observe_substation(
                p_kw, q_kvar, self.stage2.p_sub_kw, self.stage2.q_sub_kvar
            )

    def ladder(self, p_low: np.ndarray, p_high: np.ndarray) -> np.ndarray:
        """The price ladder (G, K) of every group from stage 1's band: the band itself."""
        return np.stack([p_low, p_high], axis=1)

    def post_prices(self, round_: int, slot: int, deadline: int) -> None:
        """Stage 1, then one price band per group on chain (one batch)."""
        self.client.open_rounds(round_, self.plan_bands(round_, slot), deadline)

    def read_aggregates(self, round_: int) -> dict[int, RevealedBid | None]:
        """Every group's unmasked sums from the chain; None for a group that revealed none."""
        statuses = self.client.contract.statuses(round_, self.group_ids)  # one request
        return {
            group: RevealedBid.from_aggregate(self.client.read_aggregate(round_, group))
            if statuses[group] == Status.COMPLETE
            else None
            for group in self.group_ids
        }

    def decide(
        self, round_: int, slot: int, aggregates: dict[int, RevealedBid | None]
    ) -> dict[int, float]:
        """Stage 2 on the revealed group sums; returns each group's lambda to post."""
        n_points = self.ladders.shape[1]
        points = np.zeros((len(self.group_ids), n_points))
        fallback = self.forecaster.group_kw(slot)
        self.aggregates = aggregates
        for g, group in enumerate(self.group_ids):
            aggregate = aggregates[group]
            if aggregate is not None:
                points[g] = [w_to_kw(w) for w in aggregate.points_w]
            else:
                # A failed group revealed nothing: plan it as inflexible at the forecast.
                points[g] = fallback[g]
        all_q, ordinary_q = self._q_kvar(slot), self._q_kvar(slot, hems=False)
        self.stage2 = self.dso.stage2_points(
            points,
            self.ladders,
            self.forecaster.ordinary_kw(slot),
            ordinary_q,
            mode=self.mode,
            slot=slot,
            hems_q_kvar=None if all_q is None else all_q - ordinary_q,
        )
        lam = {group: float(self.stage2.lam_group[g]) for g, group in enumerate(self.group_ids)}
        posted = np.array([lambda_as_posted(lam[group]) for group in self.group_ids])
        # the group totals the homes dispatch at the lambda they read back from the chain
        self.forecaster.observe_dispatch(dispatch_cap(posted, points))
        self.group_points_kw = points
        self.group_lmin_kw, self.group_lmax_kw = points[:, -1], points[:, 0]
        return lam

    def clear(self, round_: int, slot: int) -> dict[int, float]:
        """Read the group sums, solve stage 2, post lambda; returns each group's lambda."""
        lam = self.decide(round_, slot, self.read_aggregates(round_))
        if self.mode == "single":  # the seed paper's one lambda for the round
            self.client.post_lambda(round_, float(self.stage2.lam))
        else:
            self.client.post_lambdas(round_, lam)
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

    def respond(self, round_: int, bands: dict[int, tuple[float, ...]]) -> None:
        """Every home's bid (kW at each price of its group's ladder, $/kWh, rising; the band
        ``(p_low, p_high)`` gives ``[Lmin, Lmax]``), and who drops out."""
        slot = round_ + self.slot_offset
        n_points = len(next(iter(bands.values())))
        ladder = np.zeros((self.fleet.n_homes, n_points))
        for group, members in self.groups.items():
            ladder[members] = bands[group]
        self.p_low, self.p_high = ladder[:, 0], ladder[:, -1]
        self.points_kw = self.fleet.compute_points(slot, ladder)
        self.lmin_kw, self.lmax_kw = self.points_kw[:, -1], self.points_kw[:, 0]
        # Drawn for the whole fleet, so that every shard draws the same dropouts.
        drops = self._rng.random(self.fleet.n_homes) < self.dropout_probability
        # Every HEMS home not dropped submits (this shard's and the others'; a refused batch
        # raises in `submit`), so the fleet's figures are the same in every shard.
        self.submitted[:] = self.fleet.smart & ~drops

    def submit(self, round_: int) -> None:
        """Read each home's band, compute [Lmin, Lmax] and submit the masked bounds."""
        bands = self._contract.price_bands(round_, list(self.groups))  # public; one request
        self.respond(round_, {g: (b.p_low, b.p_high) for g, b in bands.items()})
        lower_w, upper_w = kw_to_w(self.lmin_kw), kw_to_w(self.lmax_kw)
        senders = [i for i in self.clients if self.submitted[i]]
        if senders:  # one batch: a few blocks per slot, not one round trip per home
            self._contract.chain.transact_many(
                [self.clients[i].range_request(round_, lower_w[i], upper_w[i]) for i in senders]
            )

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

    def apply(self, round_: int, lam: float | dict[int, float]) -> None:
        """Cap every HEMS home at its bid walked to its group's lambda (one for every group,
        or one per group; ``sim.protocol.dispatch_cap``) and run the slot."""
        slot = round_ + self.slot_offset
        per_home = np.zeros(self.fleet.n_homes)
        for group, members in self.groups.items():
            per_home[members] = lam[group] if isinstance(lam, dict) else lam
        self.lam = lam
        cap = dispatch_cap(per_home if isinstance(lam, dict) else lam, self.points_kw)
        self.cap_kw = np.where(self.fleet.smart, cap, np.inf)
        self.import_kw = self.fleet.dispatch(slot, self.cap_kw)
        self.q_kvar = self.fleet.last_q_kvar

    def dispatch(self, round_: int) -> None:
        """Read every group's lambda from the chain (public; one request) and apply them."""
        if self._contract is None:  # a shard without HEMS homes still runs its homes' slot
            self.apply(round_, {group: float("nan") for group in self.groups})
            return
        self.apply(round_, self._contract.lambdas(round_, list(self.groups)))

    def warm_up(self, price_usd_per_kwh: np.ndarray) -> None:
        """Run the homes on their own (no cap) from midnight to the first market slot, so a
        run that starts mid-day starts from realistic states."""
        for slot in range(self.slot_offset):
            price = float(price_usd_per_kwh[slot])
            _, lmax = self.fleet.compute_ranges(slot, price, price)
            self.fleet.dispatch(slot, np.where(self.fleet.smart, lmax, np.inf))
