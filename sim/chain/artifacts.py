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


def source_is_current(name: str) -> bool:
    """True when the artifact was built from the contract source now on disk."""
    art = load_artifact(name)
    source = (CONTRACTS_DIR / art["sourceFile"]).read_bytes()
    return hashlib.sha256(source).hexdigest() == art["sourceSha256"]


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
