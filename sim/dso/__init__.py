"""The DSO: DLMPs and price bands (stage 1), lambda clearing with an AC check (stage 2)."""

from sim.dso.dso import DSO, MODES
from sim.dso.errors import DSOError
from sim.dso.limits import DSOLimits
from sim.dso.stage1 import Stage1Result
from sim.dso.stage2 import Stage2Result

__all__ = ["DSO", "MODES", "DSOError", "DSOLimits", "Stage1Result", "Stage2Result"]
