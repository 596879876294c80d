"""The full-information benchmark (`blockhems oracle`): a central optimizer that knows every
home's appliances and comfort dispatches the scenario's homes within the feeder's limits, and
its comparison with a market run (see `oracle.py` and `report.py`). Plain objects, no mosaik."""

from sim.oracle.oracle import OracleError, OracleRun, run_oracle

__all__ = ["OracleError", "OracleRun", "run_oracle"]
