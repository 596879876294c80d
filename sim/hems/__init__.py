"""HEMS agents: appliance models, data, an ADP policy and a vectorized fleet.

Public API (plain Python, no mosaik)::

    from sim.hems import FleetConfig, HEMSFleet

    fleet = HEMSFleet(FleetConfig(seed=1, n_homes=1000, smart_share=0.5,
                                  slot_s=900, start_day=196, n_days=1))
    fleet.train()                                   # value functions, seconds
    for slot in range(fleet.n_slots):
        lmin, lmax = fleet.compute_ranges(slot, p_low, p_high)  # kW, per home
        cap = lam * lmax + (1 - lam) * lmin
        p_kw = fleet.dispatch(slot, cap)            # actual import, advances state
        q_kvar = fleet.last_q_kvar
    fleet.records["t_in_c"], fleet.occupancy        # per home, per slot

* :mod:`sim.hems.config` -- :class:`FleetConfig`, :class:`ApplianceRanges`,
  :class:`HEMSConfigError` (names the bad parameter).
* :mod:`sim.hems.data` -- weather (pvlib TMY3), PV, richardsonpy load and
  occupancy, hot-water draws, price scenarios.
* :mod:`sim.hems.appliances` -- battery, HVAC + 1R1C house, water heater.
* :mod:`sim.hems.policy` -- value functions, the one-step problem, capped response.
* :mod:`sim.hems.training` -- sampled training days, backward DP of the value functions.
* :mod:`sim.hems.homes` -- which homes are smart, household loads, HVAC sizing.
* :mod:`sim.hems.fleet` -- :class:`HEMSFleet` (ranges, dispatch, records).
* :mod:`sim.hems.baselines` -- perfect-foresight LP, ADP vs myopic comparison.
"""

from .config import ApplianceRanges, FleetConfig, HEMSConfigError, Range
from .data import Weather, load_weather, sample_prices
from .fleet import CAP_TOL_KW, RECORD_NAMES, HEMSFleet, HEMSStateError
from .homes import smart_homes

__all__ = [
    "ApplianceRanges",
    "CAP_TOL_KW",
    "FleetConfig",
    "HEMSConfigError",
    "HEMSFleet",
    "HEMSStateError",
    "RECORD_NAMES",
    "Range",
    "Weather",
    "load_weather",
    "sample_prices",
    "smart_homes",
]
