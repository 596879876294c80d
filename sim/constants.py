"""Limits and defaults that several layers share, each written once.

Imports nothing, so every layer (grid_models, the chain client, the DSO, the scenario schema)
reads them from here. The contract's own copy of a limit is checked against these by the tests
(tests/test_layout.py).
"""

from __future__ import annotations

# Aggregation groups
MAX_GROUP_SIZE = 160  # members of one group: PrivateAggregation.MAX_GROUP_SLOTS (one bitmap word)
DEFAULT_MIN_GROUP_SIZE = 5  # no group registers or reveals a sum with fewer contributors

# Protocol timing (simulated seconds)
DEFAULT_BLOCK_TIME_S = 2
DEFAULT_DEADLINE_S = 300  # submission window after the prices
DEFAULT_RECOVERY_S = 120  # dropout recovery window after the deadline

# The DSO
AC_ENGINES = ("pgm", "pandapower")  # engines of the DSO's own AC checks
DEFAULT_AC_ENGINE = "pgm"  # power-grid-model: same answers as runpp_3ph, much faster
# kept inside the limits for what the DSO cannot see (its spread of each group's total over the
# members, the ordinary homes' forecast), on the linear model and in the AC check alike.
# Measured on the EU LV feeder's stress set: where the DSO's AC check came within 0.01 pu of
# the ceiling, the ground truth was up to 0.0044 pu above it (autumn, spring), and a line up
# to 2.0 % above the DSO's loading (spring, seed 9; BENCHMARKS.md); a feeder may ask for more
# (Feeder.v_margin_pu)
DEFAULT_V_MARGIN_PU = 0.005
DEFAULT_I_MARGIN_PCT = 2.5
VOLL_USD_PER_KWH = 5.0  # value of lost load: stage 1's price cap and the ladder's outer prices

# Market modes (scenario dso.mode): per-group lambda on five-point bids with their reactive
# power, or the seed paper's one lambda on the two-point band
MARKET_MODES = ("group", "paper")
DEFAULT_MARKET_MODE = "group"

# The homes
# a household's service connection (3 x 80 A): no home draws or feeds in more
HOME_CONNECTION_KW = 50.0
DEFAULT_BATTERY_EXPORT = False  # batteries cover only their home's own load (a common tariff rule)
