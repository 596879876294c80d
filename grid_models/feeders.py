"""Feeder builders: pandapower three-phase networks with home sites and aggregation zones.

Public entry point::

    feeder = build_feeder("ieee_eu_lv", min_group_size=5)

Valid names: ``"small"``, ``"ieee_eu_lv"``, ``"large"`` (see :data:`FEEDERS`). Every builder
returns a :class:`Feeder`:

* ``net``: a pandapower net with one ext_grid, one Dyn transformer (MV/LV) and a radial
  network below it; it carries the zero-sequence data that ``runpp_3ph`` needs.
* ``homes``: one row per home (``home_id``, ``bus``, ``phase`` in ``'a'/'b'/'c'``, ``zone``,
  ``site``, ``p_kw``, ``q_kvar``); ``p_kw/q_kvar`` is a typical (base) demand.
* ``sites``: one row per bus-phase that has homes (``site``, ``bus``, ``phase``, ``n_homes``);
  the power flow and the DSO work on sites, homes are summed into them.
* ``zones``: aggregation groups (``zone``, ``phase``, ``n_homes``): homes on one phase,
  contiguous in the feeder's depth-first order (electrical proximity), each with at least
  ``min_group_size`` and at most ``max_group_size`` (contract limit 160) homes.
* ``v_min_pu``/``v_max_pu``: the voltage band of the feeder (phase-to-neutral, pu).

Each home site is served through one ``asymmetric_load`` per bus (``feeder.site_load``), whose
per-phase values the power-flow wrapper overwrites.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandapower as pp
import pandas as pd

from grid_models.errors import GridModelError
from grid_models.zones import PHASES, assign_zones, lv_dfs_order
from sim.constants import DEFAULT_MIN_GROUP_SIZE, DEFAULT_V_MARGIN_PU, MAX_GROUP_SIZE


@dataclass
class Feeder:
    """A three-phase feeder with its home sites and aggregation zones (see module docstring)."""

    name: str
    net: pp.pandapowerNet
    homes: pd.DataFrame
    sites: pd.DataFrame
    zones: pd.DataFrame
    site_load: pd.Series  # bus -> index of its asymmetric_load
    v_min_pu: float
    v_max_pu: float
    notes: list[str] = field(default_factory=list)
    # what a DSO that spreads each group's total evenly over its members keeps inside the band
    # on this feeder (pu): the spread's voltage error grows with the impedance between members
    v_margin_pu: float = DEFAULT_V_MARGIN_PU

    @property
    def n_homes(self) -> int:
        return len(self.homes)

    @property
    def n_sites(self) -> int:
        return len(self.sites)

    @property
    def lv_bus(self) -> int:
        """The transformer's LV bus (root of the radial LV network)."""
        return int(self.net.trafo.lv_bus.iloc[0])

    def site_totals(self, per_home: np.ndarray) -> np.ndarray:
        """Sum a per-home array (kW or kvar, length ``n_homes``) into per-site totals."""
        values = np.asarray(per_home, dtype=float)
        if values.shape != (self.n_homes,):
            raise GridModelError(
                f"per-home array has shape {values.shape}, expected ({self.n_homes},)"
            )
        return np.bincount(self.homes.site.to_numpy(), weights=values, minlength=self.n_sites)


# ---------------------------------------------------------------------------------------------
# helpers shared by the builders


def _finish(
    name: str,
    net: pp.pandapowerNet,
    homes: pd.DataFrame,
    v_band: tuple[float, float],
    notes: list[str],
    min_group_size: int,
    max_group_size: int,
    target_group_size: int | None,
) -> Feeder:
    """Attach one asymmetric_load per site bus, the sites table and the zones."""
    if len(net.trafo) != 1 or len(net.ext_grid) != 1:
        raise GridModelError(f"feeder {name!r}: need exactly one transformer and one ext_grid")
    homes = homes.reset_index(drop=True)
    homes.insert(0, "home_id", np.arange(len(homes)))
    sites = homes.groupby(["bus", "phase"], sort=True).size().rename("n_homes").reset_index()
    sites.insert(0, "site", np.arange(len(sites)))
    site_of = {(b, ph): s for s, b, ph in zip(sites.site, sites.bus, sites.phase, strict=True)}
    homes["site"] = [site_of[(b, ph)] for b, ph in zip(homes.bus, homes.phase, strict=True)]

    net.asymmetric_load.drop(net.asymmetric_load.index, inplace=True)
    site_load = {}
    for bus in sorted(sites.bus.unique()):
        site_load[bus] = pp.create_asymmetric_load(net, bus, name=f"site bus {bus}")
    lv = net.trafo.lv_bus.iloc[0]
    zone, zones = assign_zones(
        homes, lv_dfs_order(net, lv), min_group_size, max_group_size, target_group_size
    )
    homes["zone"] = zone.to_numpy()
    return Feeder(
        name=name,
        net=net,
        homes=homes[["home_id", "bus", "phase", "zone", "site", "p_kw", "q_kvar"]],
        sites=sites,
        zones=zones,
        site_load=pd.Series(site_load, dtype=int),
        v_min_pu=v_band[0],
        v_max_pu=v_band[1],
        notes=notes,
    )


def _add_source_and_trafo(
    net: pp.pandapowerNet,
    mv_kv: float,
    lv_kv: float,
    sn_mva: float,
    vk_percent: float,
    vkr_percent: float,
    vm_pu: float,
) -> int:
    """MV ext_grid (with sequence short-circuit data) and a Dyn MV/LV transformer; LV bus."""
    hv = pp.create_bus(net, mv_kv, name="MV source")
    lv = pp.create_bus(net, lv_kv, name="LV busbar")
    pp.create_ext_grid(
        net,
        hv,
        vm_pu=vm_pu,
        s_sc_max_mva=1000.0,
        s_sc_min_mva=800.0,
        rx_max=0.1,
        rx_min=0.1,
        r0x0_max=0.1,
        x0x_max=1.0,
    )
    pp.create_transformer_from_parameters(
        net,
        hv,
        lv,
        sn_mva=sn_mva,
        vn_hv_kv=mv_kv,
        vn_lv_kv=lv_kv,
        vkr_percent=vkr_percent,
        vk_percent=vk_percent,
        pfe_kw=0.0,
        i0_percent=0.0,
        shift_degree=30.0,
        vector_group="Dyn",
        vk0_percent=vk_percent,
        vkr0_percent=vkr_percent,
        mag0_percent=100.0,
        mag0_rx=0.0,
        si0_hv_partial=0.9,
        name="MV/LV Dyn",
    )
    return lv


def _line(net, f, t, km, r, x, r0, x0, ka, name) -> int:
    return pp.create_line_from_parameters(
        net,
        f,
        t,
        length_km=km,
        r_ohm_per_km=r,
        x_ohm_per_km=x,
        c_nf_per_km=0.0,
        max_i_ka=ka,
        r0_ohm_per_km=r0,
        x0_ohm_per_km=x0,
        c0_nf_per_km=0.0,
        name=name,
    )


# ---------------------------------------------------------------------------------------------
# builders

TAN_PF95 = float(np.tan(np.arccos(0.95)))


def build_small(
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    max_group_size: int = MAX_GROUP_SIZE,
    target_group_size: int | None = None,
    home_kw: float = 2.0,
) -> Feeder:
    """Five-bus 0.4 kV feeder behind a 250 kVA Dyn transformer, 22 homes (a/b/c = 10/7/5).

    Topology: LV busbar 1 - 2 - 3 - 4 (main cable, 95 mm2 Al, 100 m each, 240 A) and a 50 mm2
    branch 2 - 5 (150 m, 150 A). Homes per (bus, phase): bus 2 a2 b1 c1; bus 3 a3 b2 c1;
    bus 4 a3 b2 c1; bus 5 a2 b2 c2. Each home draws ``home_kw`` at power factor 0.95. Phase a
    is heaviest, so bus 4 phase a is the weak far end; the neutral shift lifts the light phase c
    (it drops least).
    """
    net = pp.create_empty_network(name="small", sn_mva=1.0)
    lv = _add_source_and_trafo(net, 20.0, 0.4, 0.25, 4.0, 1.2, 1.0)
    b = [lv] + [pp.create_bus(net, 0.4, name=f"LV {i}") for i in range(2, 6)]
    main = dict(r=0.32, x=0.075, r0=1.28, x0=0.30, ka=0.240)
    branch = dict(r=0.64, x=0.080, r0=2.56, x0=0.32, ka=0.150)
    _line(net, b[0], b[1], 0.10, name="L1-2", **main)
    _line(net, b[1], b[2], 0.10, name="L2-3", **main)
    _line(net, b[2], b[3], 0.10, name="L3-4", **main)
    _line(net, b[1], b[4], 0.15, name="L2-5", **branch)
    counts = {b[1]: (2, 1, 1), b[2]: (3, 2, 1), b[3]: (3, 2, 1), b[4]: (2, 2, 2)}
    rows = [
        {"bus": bus, "phase": ph, "p_kw": home_kw, "q_kvar": home_kw * TAN_PF95}
        for bus, n in counts.items()
        for ph, k in zip(PHASES, n, strict=True)
        for _ in range(k)
    ]
    notes = ["small: hand-made 5-bus feeder, source 1.0 pu, band 0.94-1.06 pu"]
    feeder = _finish(
        "small",
        net,
        pd.DataFrame(rows),
        (0.94, 1.06),
        notes,
        min_group_size,
        max_group_size,
        target_group_size,
    )
    # A group's members sit up to 250 m of thin cable apart on one phase: the even spread of
    # its total misjudges the far end's voltage by up to 0.011 pu (quick scenario, measured).
    feeder.v_margin_pu = 0.015
    return feeder


# Continuous ratings (A) of the EU LV feeder's conductor types, approximate values for buried
# UK LV cables from their size: imperial sizes in sq. inch (0.35 in2 ~ 225 mm2, 0.1 in2 ~ 65 mm2,
# 0.06 in2 ~ 39 mm2, 0.0225 in2 ~ 14.5 mm2, 0.007 in2 ~ 4.5 mm2 copper), metric ones aluminium.
EU_LV_AMPACITY_A = {
    "4c_35": 375.0,  # 0.35 in2 Cu PILC main
    "4c_185": 330.0,  # 185 mm2 Al waveform main
    "4c_95_SAC_XC": 235.0,  # 95 mm2 Al waveform
    "4c_1": 200.0,  # 0.1 in2 Cu main
    "4c_70": 190.0,  # 70 mm2 Al main
    "4c_06": 150.0,  # 0.06 in2 Cu main
    "35_SAC_XSC": 125.0,  # 35 mm2 Al split-concentric service
    "2c_16": 100.0,  # 16 mm2 Cu service (100 A service fuse)
    "2c_0225": 90.0,  # 0.0225 in2 Cu service
    "2c_007": 45.0,  # 0.007 in2 Cu service
}
EU_LV_BASE_V = 416.0 / np.sqrt(3.0)  # 240.2 V phase-to-neutral, the feeder's pu base


def build_ieee_eu_lv(
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    max_group_size: int = MAX_GROUP_SIZE,
    target_group_size: int | None = None,
    power_factor: float = 0.95,
    source_vm_pu: float = 1.0,
) -> Feeder:
    """IEEE European LV test feeder (pandapower ``ieee_european_lv_asymmetric``), fixed.

    55 single-phase homes (a/b/c = 21/19/15), each home at its own bus. Fixes, each recorded in
    ``feeder.notes``:

    1. Loads on phases b and c carry (almost) no reactive power (pandapower issue 2218): every
       home gets ``q = p * tan(acos(power_factor))`` (0.95 is the phase-a ratio of the
       original data).
    2. All 905 lines share the placeholder ampacity 421 A: each line gets the continuous rating
       of its conductor type (:data:`EU_LV_AMPACITY_A`), so a 4.5 mm2 service is no longer rated
       like a 0.35 in2 main and congestion can mean something.
    3. Source at 1.05 pu lifts the light phase c to ~1.068 pu through neutral shift. The
       statutory band in the UK (where the feeder comes from) is 230 V +10 %/-6 % =
       216.2-253.0 V, i.e. 0.900-1.053 pu on the feeder's 240.2 V (416 V line) base. With the
       11/0.416 kV transformer on its neutral tap, the LV busbar at no load is 240 V (230 V
       +4.4 %, the usual UK setting for voltage drop headroom), i.e. source 1.0 pu; the neutral
       shift then stays well inside the band.
    """
    import pandapower.networks as pn

    if not 0.0 < power_factor <= 1.0:
        raise GridModelError(
            f"power_factor must be in (0, 1], got {power_factor}", key="power_factor"
        )
    net = pn.ieee_european_lv_asymmetric()
    net.trafo["tap_dependency_table"] = False  # pandapower 3 field missing in the stored net
    notes = []
    tan = float(np.tan(np.arccos(power_factor)))
    loads = net.asymmetric_load
    rows = []
    for _, load in loads.iterrows():
        for ph in PHASES:
            p = float(load[f"p_{ph}_mw"]) * 1e3
            q = float(load[f"q_{ph}_mvar"]) * 1e3
            if p > 0.0 or q != 0.0:
                rows.append({"bus": int(load.bus), "phase": ph, "p_kw": p, "q_kvar": p * tan})
    notes.append(
        f"ieee_eu_lv: reactive power set to p*tan(acos({power_factor})) on all phases "
        "(phase b/c loads had q=0, pandapower issue 2218)"
    )
    unknown = set(net.line.std_type) - set(EU_LV_AMPACITY_A)
    if unknown:
        raise GridModelError(f"ieee_eu_lv: no ampacity for conductor types {sorted(unknown)}")
    net.line["max_i_ka"] = net.line.std_type.map(EU_LV_AMPACITY_A).astype(float) / 1e3
    notes.append("ieee_eu_lv: line ampacity from conductor type (was 421 A on every line)")
    net.ext_grid["vm_pu"] = source_vm_pu
    v_min = 216.2 / EU_LV_BASE_V
    v_max = 253.0 / EU_LV_BASE_V
    notes.append(
        f"ieee_eu_lv: source {source_vm_pu} pu (was 1.05), band {v_min:.3f}-{v_max:.3f} pu "
        "(230 V +10 %/-6 % on the 240.2 V base)"
    )
    return _finish(
        "ieee_eu_lv",
        net,
        pd.DataFrame(rows),
        (v_min, v_max),
        notes,
        min_group_size,
        max_group_size,
        target_group_size,
    )


def build_large(
    n_homes: int = 1000,
    seed: int = 0,
    min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
    max_group_size: int = MAX_GROUP_SIZE,
    target_group_size: int | None = 40,
    phase_shares: tuple[float, float, float] = (0.42, 0.33, 0.25),
    n_main: int = 16,
) -> Feeder:
    """11 kV unbalanced feeder with many homes per node-phase (hundreds to a few thousand).

    A 33/11 kV 10 MVA Dyn transformer feeds a main line of ``n_main`` nodes (500 m spans of
    overhead conductor, r/x = 0.30/0.35 ohm/km, r0/x0 = 0.45/1.20 ohm/km, 350 A) with a 3-node
    lateral (300 m spans, 0.60/0.38 and 0.75/1.30 ohm/km, 150 A) at every node. Each home is a
    single-phase load of a node (as behind a service transformer, not modelled); phases get
    ``phase_shares`` of the homes and nodes are drawn at random (``seed``), so node-phases carry
    unequal numbers of homes. Base demand per home is uniform in 0.5-2.5 kW at power factor 0.95.
    """
    if not 10 <= n_homes <= 5000:
        raise GridModelError(
            f"large feeder: n_homes must be in [10, 5000], got {n_homes}", key="n_homes"
        )
    shares = np.asarray(phase_shares, dtype=float)
    if shares.shape != (3,) or np.any(shares <= 0) or not np.isclose(shares.sum(), 1.0):
        raise GridModelError(
            f"phase_shares must be 3 positive numbers summing to 1: {shares}", key="phase_shares"
        )
    rng = np.random.default_rng(seed)
    net = pp.create_empty_network(name="large", sn_mva=1.0)
    lv = _add_source_and_trafo(net, 33.0, 11.0, 10.0, 8.0, 0.8, 1.02)
    main = dict(r=0.30, x=0.35, r0=0.45, x0=1.20, ka=0.350)
    lat = dict(r=0.60, x=0.38, r0=0.75, x0=1.30, ka=0.150)
    nodes = []
    prev = lv
    for i in range(n_main):
        m = pp.create_bus(net, 11.0, name=f"M{i}")
        _line(net, prev, m, 0.5, name=f"M{i}", **main)
        nodes.append(m)
        p = m
        for j in range(3):
            s = pp.create_bus(net, 11.0, name=f"M{i}L{j}")
            _line(net, p, s, 0.3, name=f"M{i}L{j}", **lat)
            nodes.append(s)
            p = s
        prev = m
    phase = rng.choice(3, size=n_homes, p=shares)
    bus = rng.choice(np.asarray(nodes), size=n_homes)
    p_kw = rng.uniform(0.5, 2.5, size=n_homes)
    homes = pd.DataFrame(
        {"bus": bus, "phase": np.asarray(PHASES)[phase], "p_kw": p_kw, "q_kvar": p_kw * TAN_PF95}
    )
    notes = [f"large: {n_homes} homes, seed {seed}, source 1.02 pu, band 0.95-1.05 pu"]
    return _finish(
        "large", net, homes, (0.95, 1.05), notes, min_group_size, max_group_size, target_group_size
    )


FEEDERS: dict[str, Callable[..., Feeder]] = {
    "small": build_small,
    "ieee_eu_lv": build_ieee_eu_lv,
    "large": build_large,
}


def build_feeder(name: str, **options) -> Feeder:
    """Build a feeder by name (``small``, ``ieee_eu_lv``, ``large``); options go to the builder.

    The builders are deterministic, so a built feeder is kept in the set-up cache
    (:mod:`sim.cache`, per name, options, this package's code and pandapower's version);
    every call returns its own copy (callers write loads and results into its net)."""
    if name not in FEEDERS:
        raise GridModelError(f"unknown feeder {name!r}; valid names: {', '.join(FEEDERS)}")
    from sim.cache import cached_object

    def build() -> Feeder:
        try:
            return FEEDERS[name](**options)
        except TypeError as exc:  # unknown keyword option
            raise GridModelError(f"feeder {name!r}: {exc}") from exc

    return cached_object("feeder", _builder_code(), {"name": name, "options": options}, build)


@functools.cache
def _builder_code() -> str:
    import sys
    from importlib.metadata import version

    from grid_models import zones
    from sim import constants  # the defaults a built feeder carries (its v_margin_pu)
    from sim.cache import source_digest

    modules = [sys.modules[__name__], zones, constants]
    return source_digest(modules) + ":pandapower " + version("pandapower")
