"""Committed contract build artifacts (contracts/build/*.json) and revert decoding.

Running the project needs no Node.js: the ABI and bytecode come from the committed artifacts,
which `cd contracts && npm run build` writes with the pinned solc-js.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector

from sim.errors import BlockhemsError

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
BUILD_DIR = CONTRACTS_DIR / "build"


class ArtifactError(BlockhemsError, RuntimeError):
    """A contract artifact is missing or does not match its source."""


@cache
def load_artifact(name: str) -> dict[str, Any]:
    """The artifact of contract `name` (abi, bytecode, compiler, settings, source hash)."""
    path = BUILD_DIR / f"{name}.json"
    if not path.exists():
        known = sorted(p.stem for p in BUILD_DIR.glob("*.json"))
        raise ArtifactError(f"no artifact for contract {name!r} in {BUILD_DIR}; known: {known}")
    return json.loads(path.read_text())


def stale_sources(name: str, contracts_dir: Path = CONTRACTS_DIR) -> list[str]:
    """This repository's contract sources (under `contracts_dir`/src) that the artifact of
    `name` was built from and that differ from the files on disk now (or are missing): the
    contract's own file and every local file it was compiled with, such as the interface it
    implements (`allSourcesSha256`, from solc's metadata). Imported OpenZeppelin files are
    pinned by the lockfile and checked by the rebuild test, not here."""
    art = json.loads((contracts_dir / "build" / f"{name}.json").read_text())
    expected = dict(art["allSourcesSha256"])
    expected[art["sourceFile"].removeprefix("src/")] = art["sourceSha256"]
    stale = []
    for unit, digest in sorted(expected.items()):
        if unit.startswith("@"):
            continue  # an npm import (node_modules), not one of ours
        path = contracts_dir / "src" / unit
        if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            stale.append(f"src/{unit}")
    return stale


def source_is_current(name: str) -> bool:
    """True when the artifact was built from the contract sources now on disk."""
    return not stale_sources(name)


def _canonical_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return item["type"]


def decode_revert(abi: list[dict[str, Any]], data: Any, fallback: str) -> tuple[str, dict]:
    """Name and arguments of the custom error whose encoding is `data` (hex string)."""
    if isinstance(data, dict):  # some providers nest the payload
        data = data.get("data")
    if not isinstance(data, str) or not data.startswith("0x") or len(data) < 10:
        return "UnknownRevert", {"message": fallback}
    raw = bytes.fromhex(data[2:])
    for item in abi:
        if item.get("type") != "error":
            continue
        types = [_canonical_type(i) for i in item["inputs"]]
        if function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})") != raw[:4]:
            continue
        values = abi_decode(types, raw[4:])
        return item["name"], {i["name"]: v for i, v in zip(item["inputs"], values, strict=True)}
    return "UnknownRevert", {"data": data}
