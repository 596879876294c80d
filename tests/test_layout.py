"""The layout's rules: layers import downwards only, one exception root, one source per shared
constant."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import grid_models
import sim
from sim import constants
from sim.chain import units
from sim.chain.connection import connect
from sim.chain.deployment import setup_market
from sim.errors import BlockhemsError

ROOT = Path(__file__).resolve().parents[1]


def _modules(package) -> list[str]:
    return [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]


@pytest.mark.parametrize("package", ["sim.market", "sim.privacy"])
def test_plain_layers_load_no_mosaik(package: str) -> None:
    # a fresh interpreter, so that nothing imported by other tests counts
    code = (
        "import importlib, pkgutil, sys\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0].startswith('mosaik')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", f"{package} loads {out.stdout.strip()}"


def _imports(module_name: str) -> set[str]:
    """Every module an `import` statement of `module_name` names (top level or in functions)."""
    tree = ast.parse(Path(importlib.import_module(module_name).__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module)
    return names


# Each layer may import the ones after it in this list, never one before it.
LAYERS = [
    "sim.cli",
    "sim.console",
    "sim.cosim",
    "sim.offline",
    "sim.oracle",
    "sim.results",
    "sim.privacy",
    "sim.market",
    "sim.dso",
    "sim.hems",
    "sim.chain",
    "sim.scenario",
    "sim.protocol",
    "grid_models",
    "sim.children",
    "sim.table_io",
    "sim.constants",
    "sim.errors",
]


def test_no_import_runs_from_a_lower_layer_up() -> None:
    def layer(name: str) -> int | None:
        for i, prefix in enumerate(LAYERS):
            if name == prefix or name.startswith(prefix + "."):
                return i
        return None

    upward = []
    for package in (sim, grid_models):
        for name in _modules(package):
            own = layer(name)
            for imported in _imports(name):
                other = layer(imported)
                if own is not None and other is not None and other < own:
                    upward.append(f"{name} imports {imported}")
    assert not upward, upward


def test_every_exception_derives_from_the_one_root() -> None:
    found = []
    for package in (sim, grid_models):
        for name in _modules(package):
            module = importlib.import_module(name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, BaseException) and cls.__module__ == name:
                    found.append(cls)
    assert len(found) >= 15  # the walk found the project's exceptions
    strays = [f"{c.__module__}.{c.__name__}" for c in found if not issubclass(c, BlockhemsError)]
    assert not strays, f"exceptions outside BlockhemsError: {strays}"


def test_contract_limits_equal_the_python_constants() -> None:
    market = setup_market(connect("revm"), [0] * 5)
    contract = market.contract
    assert contract.call("MAX_GROUP_SLOTS") == constants.MAX_GROUP_SIZE
    assert contract.call("LAMBDA_SCALE") == units.LAMBDA_SCALE
    assert contract.min_group_size == constants.DEFAULT_MIN_GROUP_SIZE
    assert contract.recovery_period_s == constants.DEFAULT_RECOVERY_S


LONG_MODULE_LINES = 460


def test_a_long_module_says_why_in_its_docstring() -> None:
    """No module over ~450 lines without a 'Length:' paragraph in its docstring."""
    unexplained = []
    for root in (Path(sim.__file__).parent, Path(grid_models.__file__).parent):
        for path in root.rglob("*.py"):
            text = path.read_text()
            if text.count("\n") > LONG_MODULE_LINES:
                doc = ast.get_docstring(ast.parse(text)) or ""
                if "Length:" not in doc:
                    unexplained.append(f"{path.name}: {text.count(chr(10))} lines")
    assert not unexplained, unexplained
