"""Regenerate tests/golden/quick.json (the lambda and voltage regression of the quick scenario).

Only run this after a deliberate change of results, and say why in the commit:
    .venv/bin/python tests/update_golden.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.cosim.world import run_scenario  # noqa: E402
from sim.scenario import SCENARIOS_DIR, load_scenario  # noqa: E402
from tests.test_world import GOLDEN, golden_figures  # noqa: E402

if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        run_scenario(load_scenario(SCENARIOS_DIR / "quick.yaml"), tmp, progress=False)
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(golden_figures(Path(tmp)), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
