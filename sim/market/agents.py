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
from sim.chain.bids import BidError, decode_ladder, encode_ladder, ladder_is_consistent
from sim.chain.private import DSOClient, GroupAggregate, HomeClient, Status
from sim.chain.units import kw_to_w, lambda_as_posted, w_to_kw
from sim.constants import (
    DEFAULT_MARKET_MODE,
    HOME_CONNECTION_KW,
    MARKET_MODES,
    VOLL_USD_PER_KWH,
)
from sim.dso import DSO, DSOError
from sim.dso.forecast import DSOForecaster
from sim.hems import HEMSFleet
from sim.protocol import GROUP_BID_POINTS, bid_prices, dispatch_cap


@dataclass(frozen=True)
class RevealedBid:
    """What the DSO learns of a group in a round: the sum of its homes' bids (W at each price
    of the ladder, rising prices, so Lmax first) and how many homes it sums."""

    points_w: tuple[int, ...]
    contributors: int
    q_points_var: tuple[int, ...] | None = None  # reactive demand at each point (group mode)

    @classmethod
    def from_aggregate(cls, aggregate: GroupAggregate, mode: str) -> RevealedBid:
        """The contract's two sums of a group: [Lmin, Lmax] in the paper's mode, the packed
        five-point bid with its reactive power in the group mode (``sim.chain.bids``).
        Raises BidError when the sums are not what such bids add up to (a garbage word)."""
        if mode == "paper":
            return cls((aggregate.upper_w, aggregate.lower_w), aggregate.contributors)
        lower, upper = aggregate.lower_w, aggregate.upper_w
        if not ladder_is_consistent(lower, upper, GROUP_BID_POINTS):
            raise BidError("the group's sums do not decode to five-point bids")
        points, q = decode_ladder(lower, upper, GROUP_BID_POINTS)
        return cls(points, aggregate.contributors, q)

    def implausible(self) -> str | None:
        """Why these sums cannot be what honest homes bid, or None: the points must not rise
        with the price, and no point may exceed what the contributors' connections carry."""
        points = np.asarray(self.points_w, dtype=float)
        if np.any(np.diff(points) > 0):
            return "demand rises with the price"
        limit_w = self.contributors * HOME_CONNECTION_KW * 1000.0
        if np.any(np.abs(points) > limit_w):
            return f"a point beyond {self.contributors} x {HOME_CONNECTION_KW:.0f} kW"
        if self.q_points_var is not None and np.any(np.abs(self.q_points_var) > limit_w):
            return f"reactive power beyond {self.contributors} x {HOME_CONNECTION_KW:.0f} kvar"
        return None


class DSOAgent:
    """The DSO of one feeder: prices, then lambda, through the chain only."""

    def __init__(
        self,
        dso: DSO,
        client: DSOClient | None,
        forecaster: DSOForecaster,
        energy_price: list[float],
        mode: str = DEFAULT_MARKET_MODE,
        slot_h: float = 0.25,
        band_damping: float = 0.0,
    ) -> None:
        """`band_damping` (0 to below 1): each posted band is that share of the last round's
        band plus the rest of stage 1's (0: stage 1's band as it is)."""
        if not 0.0 <= band_damping < 1.0:
            raise DSOError(f"band_damping must be in [0, 1), got {band_damping}")
        self.band_damping = float(band_damping)
        self.posted_bands: np.ndarray | None = None  # (groups, 2) $/kWh, the last posted
        self.dso = dso
        self.slot_h = slot_h
        self.client = client
        self.forecaster = forecaster
        self.energy_price = energy_price  # $/kWh per slot of the run
        if mode not in MARKET_MODES:
            raise DSOError(f"unknown market mode {mode!r}; modes: {', '.join(MARKET_MODES)}")
        self.mode = mode  # the market's (scenario dso.mode)
        self.clearing = "single" if mode == "paper" else "group"  # stage 2's
        self.group_ids = [int(g) for g in dso.group_ids]
        # the DSO's model of the homes' reactive power: their bids' own (group mode), or its
        # forecast of their load's (q = tan phi * household load, corrected by the meter)
        self.q_model = "bid" if mode == "group" else "load"
        self.stage1 = None
        self.stage2 = None
        self.aggregates: dict[int, object] = {}
        self.implausible: dict[int, str] = {}  # group: why its sums were not used this round
        self._last_lam: dict[int, float] = {}

    def plan_bands(self, round_: int, slot: int) -> dict[int, tuple[float, float]]:
        """Stage 1 on the DSO's forecast: every group's band ``(p_low, p_high)`` ($/kWh); its
        homes bid at the prices ``sim.protocol.bid_prices`` makes of it.

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
        bands = np.column_stack([self.stage1.p_low, self.stage1.p_high])
        if self.band_damping and self.posted_bands is not None:
            bands = self.band_damping * self.posted_bands + (1 - self.band_damping) * bands
        self.posted_bands = bands
        self.ladders = self.ladder(bands[:, 0], bands[:, 1])
        return {
            group: (float(bands[g, 0]), float(bands[g, 1]))
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
        """The prices (G, K, $/kWh, rising) at which every group's homes bid."""
        return bid_prices(p_low, p_high, self.mode, self.dso.voll)

    def post_prices(self, round_: int, slot: int, deadline: int) -> None:
        """Stage 1, then one price band per group on chain (one batch)."""
        self.client.open_rounds(round_, self.plan_bands(round_, slot), deadline)

    def read_aggregates(self, round_: int) -> dict[int, RevealedBid | str | None]:
        """Every group's unmasked sums from the chain; None for a group that revealed none,
        the reason for sums that do not decode (see `decide`)."""
        statuses = self.client.contract.statuses(round_, self.group_ids)  # one request
        out: dict[int, RevealedBid | str | None] = {}
        for group in self.group_ids:
            out[group] = None
            if statuses[group] == Status.COMPLETE:
                aggregate = self.client.read_aggregate(round_, group)
                try:
                    out[group] = RevealedBid.from_aggregate(aggregate, self.mode)
                except BidError as exc:
                    out[group] = str(exc)
        return out

    def screen(
        self, aggregates: dict[int, RevealedBid | str | None]
    ) -> dict[int, RevealedBid | None]:
        """The revealed sums the DSO dispatches on: an implausible group's (a poisoned word, a
        lie beyond what its homes can do) is dropped and recorded in `implausible` by group,
        and the group is planned like one that revealed nothing."""
        self.implausible = {}
        kept: dict[int, RevealedBid | None] = {}
        for group, aggregate in aggregates.items():
            reason = aggregate if isinstance(aggregate, str) else None
            if isinstance(aggregate, RevealedBid):
                reason = aggregate.implausible()
            if reason is not None:
                self.implausible[group] = reason
            kept[group] = None if reason is not None else aggregate
        return kept

    def decide(
        self, round_: int, slot: int, aggregates: dict[int, RevealedBid | None]
    ) -> dict[int, float]:
        """Stage 2 on the revealed group sums; returns each group's lambda to post.

        Members that did not submit still dispatch their own bid at their group's lambda: a
        group's sums are scaled up to its members (the contributors' average; the count is
        public). A group without usable sums (too few submitted, or `screen` refused them) is
        planned as inflexible at the forecast, and its homes get the lambda they had in the
        last round (the dispatch that forecast follows; 0.5 at first). Planning such a group
        on its last revealed demand curve at this round's prices was tried and was worse on
        the small feeder with dropouts (0.0188 pu below the band against 0.0090)."""
        aggregates = self.screen(aggregates)
        n_points = self.ladders.shape[1]
        points = np.zeros((len(self.group_ids), n_points))
        q_points = np.zeros_like(points)
        with_q = True
        fallback = self.forecaster.group_kw(slot)
        self.aggregates = aggregates
        scales = np.ones(len(self.group_ids))
        for g, group in enumerate(self.group_ids):
            aggregate = aggregates[group]
            if aggregate is not None:
                scale = scales[g] = self.forecaster.group_sizes[g] / max(aggregate.contributors, 1)
                points[g] = [scale * w_to_kw(w) for w in aggregate.points_w]
                if aggregate.q_points_var is None:
                    with_q = False
                else:
                    q_points[g] = [scale * w_to_kw(v) for v in aggregate.q_points_var]
            else:
                # A failed group revealed nothing: plan it as inflexible at the forecast.
                points[g] = fallback[g]
                q_points[g] = self.dso.tan_forecast * max(fallback[g], 0.0)
        all_q, ordinary_q = self._q_kvar(slot), self._q_kvar(slot, hems=False)
        if with_q and self.q_model == "bid":
            hems_q = self.forecaster.hems_per_site * self.forecaster.q_bias_kvar_per_home
        else:
            q_points = None
            hems_q = None if all_q is None else all_q - ordinary_q
        self.stage2 = self.dso.stage2_points(
            points,
            self.ladders,
            self.forecaster.ordinary_kw(slot),
            ordinary_q,
            mode=self.clearing,
            slot=slot,
            hems_q_kvar=hems_q,
            q_points_kvar=q_points,
        )
        lam = {group: float(self.stage2.lam_group[g]) for g, group in enumerate(self.group_ids)}
        for group in self.group_ids:
            if aggregates[group] is None and self.clearing == "group":
                lam[group] = self._last_lam.get(group, 0.5)
                self.stage2.lam_group[self.group_ids.index(group)] = lam[group]
        self._last_lam = dict(lam)
        posted = np.array([lambda_as_posted(lam[group]) for group in self.group_ids])
        # the group totals the homes dispatch at the lambda they read back from the chain
        self.forecaster.observe_dispatch(dispatch_cap(posted, points))
        self.group_points_kw = points  # as planned: scaled up to every member
        # as revealed (the contributors' sums) or, for a group without, its forecast
        self.group_lmin_kw = points[:, -1] / scales
        self.group_lmax_kw = points[:, 0] / scales
        return lam

    def clear(self, round_: int, slot: int) -> dict[int, float]:
        """Read the group sums, solve stage 2, post lambda; returns each group's lambda."""
        lam = self.decide(round_, slot, self.read_aggregates(round_))
        if self.mode == "paper":  # the seed paper's one lambda for the round
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
        mode: str = DEFAULT_MARKET_MODE,
        voll_usd_per_kwh: float = VOLL_USD_PER_KWH,
    ) -> None:
        self.fleet = fleet
        self.clients = clients
        self.mode = mode  # the market's: which prices the homes bid at, how bids are packed
        self.voll_usd_per_kwh = voll_usd_per_kwh
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
        self.low_price_kw = np.zeros(fleet.n_homes)
        self.lmax_kw = np.zeros(fleet.n_homes)
        self.p_low = np.zeros(fleet.n_homes)
        self.p_high = np.zeros(fleet.n_homes)
        self.submitted = np.zeros(fleet.n_homes, dtype=bool)
        self.cap_kw = np.zeros(fleet.n_homes)
        self.import_kw = np.zeros(fleet.n_homes)
        self.q_kvar = np.zeros(fleet.n_homes)
        self.lam = float("nan")

    def respond(self, round_: int, bands: dict[int, tuple[float, float]]) -> None:
        """Every home's bid from its group's band ``(p_low, p_high)`` ($/kWh): kW (and kvar)
        at each price of ``sim.protocol.bid_prices``, highest demand first, so ``[Lmin,
        Lmax]`` are the last and the first point; and who drops out."""
        slot = round_ + self.slot_offset
        band = np.zeros((self.fleet.n_homes, 2))
        for group, members in self.groups.items():
            band[members] = bands[group]
        self.p_low, self.p_high = band[:, 0], band[:, 1]
        ladder = bid_prices(self.p_low, self.p_high, self.mode, self.voll_usd_per_kwh)
        self.points_kw = self.fleet.compute_points(slot, ladder, shed_last=self.mode == "group")
        self.points_q_kvar = self.fleet.points_q_kvar
        self.lmin_kw, self.lmax_kw = self.points_kw[:, -1], self.points_kw[:, 0]
        # what each home would draw at the band's low price: the point at p_low
        self.low_price_kw = self.points_kw[:, 1 if self.points_kw.shape[1] > 2 else 0]
        # Drawn for the whole fleet, so that every shard draws the same dropouts.
        drops = self._rng.random(self.fleet.n_homes) < self.dropout_probability
        # Every HEMS home not dropped submits (this shard's and the others'; a refused batch
        # raises in `submit`), so the fleet's figures are the same in every shard.
        self.submitted[:] = self.fleet.smart & ~drops

    def submit(self, round_: int) -> None:
        """Read each home's band, compute [Lmin, Lmax] and submit the masked bounds."""
        bands = self._contract.price_bands(round_, list(self.groups))  # public; one request
        self.respond(round_, {g: (b.p_low, b.p_high) for g, b in bands.items()})
        senders = [i for i in self.clients if self.submitted[i]]
        if not senders:
            return
        if self.mode == "paper":
            lower_w, upper_w = kw_to_w(self.lmin_kw), kw_to_w(self.lmax_kw)
            requests = [
                self.clients[i].range_request(round_, lower_w[i], upper_w[i]) for i in senders
            ]
        else:
            requests = [
                self.clients[i].words_request(round_, *encode_ladder(*self.bid_w(i)))
                for i in senders
            ]
        # one batch: a few blocks per slot, not one round trip per home
        self._contract.chain.transact_many(requests)

    def bid_w(self, home: int) -> tuple[list[int], list[int]]:
        """A home's bid as it goes on chain: integer W at each point and var at each point."""
        return kw_to_w(self.points_kw[home]), kw_to_w(self.points_q_kvar[home])

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
        or one per group; ``sim.protocol.dispatch_cap``) and run the slot: in the paper's mode
        each home runs as it likes below its cap, in the group mode it runs its bid's own
        appliance mix at lambda (``HEMSFleet.dispatch_bid``)."""
        slot = round_ + self.slot_offset
        per_home = np.zeros(self.fleet.n_homes)
        for group, members in self.groups.items():
            per_home[members] = lam[group] if isinstance(lam, dict) else lam
        self.lam = lam
        walked = per_home if isinstance(lam, dict) else lam
        cap = dispatch_cap(walked, self.points_kw)
        self.cap_kw = np.where(self.fleet.smart, cap, np.inf)
        if self.mode == "paper":  # the paper's homes run as they like below their cap
            self.import_kw = self.fleet.dispatch(slot, self.cap_kw)
        else:  # the group mode's homes run the bid's own mix at lambda (P and Q as bid)
            self.import_kw = self.fleet.dispatch_bid(slot, walked)
        self.q_kvar = self.fleet.last_q_kvar

    def dispatch(self, round_: int) -> None:
        """Read every group's lambda from the chain (public; one request) and apply them."""
        if self._contract is None:  # a shard without HEMS homes still runs its homes' slot
            self.apply(round_, {group: float("nan") for group in self.groups})
            return
        self.apply(round_, self._contract.lambdas(round_, list(self.groups)))

    def run_alone(self, slot: int, price_usd_per_kwh: float) -> None:
        """One slot of the homes on their own, no market: every HEMS home draws its plan at
        the substation price, uncapped (its bid has one point: Lmin = Lmax)."""
        n = self.fleet.n_homes
        self.lmin_kw, self.lmax_kw = self.fleet.compute_ranges(
            slot, price_usd_per_kwh, price_usd_per_kwh
        )
        self.low_price_kw = self.lmax_kw
        self.p_low = self.p_high = np.full(n, price_usd_per_kwh)
        self.cap_kw = np.full(n, np.inf)
        self.import_kw = self.fleet.dispatch(slot, np.where(self.fleet.smart, self.lmax_kw, np.inf))
        self.q_kvar = self.fleet.last_q_kvar

    def warm_up(self, price_usd_per_kwh: np.ndarray) -> None:
        """Run the homes on their own (`run_alone`) from midnight to the first market slot, so
        a run that starts mid-day starts from realistic states."""
        for slot in range(self.slot_offset):
            self.run_alone(slot, float(price_usd_per_kwh[slot]))
