"""Committed contract artifacts match their sources and the pinned compiler."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sim.chain.artifacts import CONTRACTS_DIR, load_artifact, stale_sources
from tests.conftest import skip_or_fail

CONTRACTS = ("PrivateAggregation", "SeedBaseline")
INTERFACE = CONTRACTS_DIR / "src" / "IPrivateAggregation.sol"


@pytest.mark.parametrize("name", CONTRACTS)
def test_artifact_matches_source_hash_and_pinned_compiler(name: str) -> None:
    art = load_artifact(name)
    stale = stale_sources(name)
    assert not stale, f"{name}: {stale} changed; run `cd contracts && npm run build`"
    package = json.loads((CONTRACTS_DIR / "package.json").read_text())
    pinned = package["devDependencies"]["solc"]
    assert pinned[0].isdigit(), f"solc must be pinned exactly in package.json, got {pinned!r}"
    assert art["compiler"]["version"].startswith(pinned + "+")
    lock = json.loads((CONTRACTS_DIR / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/solc"]["version"] == pinned
    assert art["bytecode"].startswith("0x") and len(art["bytecode"]) > 1000
    digest = hashlib.sha256((CONTRACTS_DIR / art["sourceFile"]).read_bytes()).hexdigest()
    assert art["allSourcesSha256"][art["sourceFile"].removeprefix("src/")] == digest


def test_a_changed_interface_makes_the_artifact_stale(tmp_path: Path) -> None:
    """The interface is hashed into the implementing contract's artifact: editing it alone
    (not the contract) is caught without Node.js."""
    assert "IPrivateAggregation.sol" in load_artifact("PrivateAggregation")["allSourcesSha256"]
    copy = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR / "src", copy / "src")
    shutil.copytree(CONTRACTS_DIR / "build", copy / "build")
    assert stale_sources("PrivateAggregation", copy) == []
    interface = copy / "src" / "IPrivateAggregation.sol"
    interface.write_text(interface.read_text() + "\n// edited\n")
    assert stale_sources("PrivateAggregation", copy) == ["src/IPrivateAggregation.sol"]
    assert stale_sources("SeedBaseline", copy) == []  # it does not use the interface
    interface.unlink()
    assert stale_sources("PrivateAggregation", copy) == ["src/IPrivateAggregation.sol"]


def test_interface_is_the_one_place_of_events_errors_and_status() -> None:
    """Every event and custom error of the ABI that is not OpenZeppelin's, and the Status enum,
    is declared in IPrivateAggregation.sol and nowhere in PrivateAggregation.sol."""
    interface = INTERFACE.read_text()
    contract = (CONTRACTS_DIR / "src" / "PrivateAggregation.sol").read_text()
    assert not re.search(r"^\s*(event|error|enum)\s", contract, re.M)
    assert re.search(r"^\s*enum Status \{", interface, re.M)
    ownable = {  # declared by OpenZeppelin's Ownable2Step
        "owner",
        "pendingOwner",
        "transferOwnership",
        "acceptOwnership",
        "renounceOwnership",
        "OwnershipTransferred",
        "OwnershipTransferStarted",
        "OwnableUnauthorizedAccount",
        "OwnableInvalidOwner",
    }
    for item in load_artifact("PrivateAggregation")["abi"]:
        if item["type"] in ("event", "error", "function") and item["name"] not in ownable:
            declared = rf"^\s*{item['type']} {item['name']}\("
            assert re.search(declared, interface, re.M), f"{item['type']} {item['name']}"


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
