"""Privacy measured: can an eavesdropper tell from the market's data whether a home is occupied?

* :mod:`sim.privacy.observers` -- what the chain observer reads (JSON-RPC only: blocks,
  transaction inputs, gas, logs, storage) and what the DSO learns (group sums), as per-home
  series.
* :mod:`sim.privacy.attacker` -- features, a numpy logistic regression, train/score split.
* :mod:`sim.privacy.metrics` -- accuracy, balanced accuracy, rank AUC, chance margins,
  block-bootstrap intervals.
* :mod:`sim.privacy.plots` -- the figure (ROC curves, scores with intervals).
* :mod:`sim.privacy.experiment` -- the protocol on both contracts for the same homes and days
  (`blockhems privacy SCENARIO`), the report and its checks.
* :mod:`sim.privacy.leakage` -- what the public price bands and lambda of a co-simulation
  run tell about a group's dispatched total (R^2 of linear models, `blockhems leakage DIR`).
"""

DEFAULT_DAYS = 4  # whole days run by default: the attacker trains on 2 and is scored on 2
DEFAULT_LAMBDA = 0.5  # the fixed dispatch factor posted every round
DEFAULT_DROPOUT = 0.05  # chance a home misses a round's submission (both contracts)
