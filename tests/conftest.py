"""Shared fixtures: chain backends (embedded eth-tester, embedded revm, a hardhat JSON-RPC node)
and the revm chain served as a JSON-RPC node."""

from __future__ import annotations

import os

import pytest

from sim.chain.connection import Chain, connect
from sim.chain.node import HardhatNode, RevmNode, node_unavailable_reason

IN_CI = os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip a test that needs something absent; under CI=true that is a failure."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def hardhat_url():
    reason = node_unavailable_reason()
    if reason:
        skip_or_fail(reason)
    with HardhatNode() as node:
        yield node.url


@pytest.fixture(scope="session")
def revm_node_url():
    """A revm JSON-RPC node (`python -m sim.chain.revm.node`) shared by the session's tests."""
    with RevmNode() as node:
        yield node.url


@pytest.fixture(params=["embedded", "revm", pytest.param("hardhat", marks=pytest.mark.node)])
def chain(request) -> Chain:
    """A chain on each backend; tests using it run on all three."""
    if request.param == "hardhat":
        return connect("rpc", request.getfixturevalue("hardhat_url"))
    return connect(request.param)
