"""Committed contract artifacts match their sources and the pinned compiler."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest

from sim.chain.artifacts import CONTRACTS_DIR, load_artifact, source_is_current
from tests.conftest import skip_or_fail

CONTRACTS = ("PrivateAggregation", "SeedBaseline")


@pytest.mark.parametrize("name", CONTRACTS)
def test_artifact_matches_source_hash_and_pinned_compiler(name: str) -> None:
    art = load_artifact(name)
    assert source_is_current(name), f"{name}: source changed; run `cd contracts && npm run build`"
    package = json.loads((CONTRACTS_DIR / "package.json").read_text())
    pinned = package["devDependencies"]["solc"]
    assert pinned[0].isdigit(), f"solc must be pinned exactly in package.json, got {pinned!r}"
    assert art["compiler"]["version"].startswith(pinned + "+")
    lock = json.loads((CONTRACTS_DIR / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/solc"]["version"] == pinned
    assert art["bytecode"].startswith("0x") and len(art["bytecode"]) > 1000
    digest = hashlib.sha256((CONTRACTS_DIR / art["sourceFile"]).read_bytes()).hexdigest()
    assert art["allSourcesSha256"][art["sourceFile"].removeprefix("src/")] == digest


@pytest.mark.node
def test_rebuild_with_pinned_solc_reproduces_committed_artifacts() -> None:
    if shutil.which("node") is None:
        skip_or_fail("Node.js is not installed (needed to rebuild the contracts)")
    if not (CONTRACTS_DIR / "node_modules" / "solc").exists():
        skip_or_fail(f"solc-js is not installed: run `npm ci` in {CONTRACTS_DIR}")
    result = subprocess.run(
        ["node", "build.js", "--check"], cwd=CONTRACTS_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
