"""Scenario files: the YAML schema (pydantic) and its validation.

A scenario names the feeder, the homes, the simulated days, the chain, the aggregation, the
DSO's limits and the outputs. Every mistake is reported as one ScenarioError whose message
names the key (dotted path) and the problem, e.g.

    scenario quick.yaml: time.slot_s: 700 s does not divide a day (86400 s)
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.constants import (
    AC_ENGINES,
    DEFAULT_AC_ENGINE,
    DEFAULT_BATTERY_EXPORT,
    DEFAULT_BLOCK_TIME_S,
    DEFAULT_DEADLINE_S,
    DEFAULT_I_MARGIN_PCT,
    DEFAULT_MIN_GROUP_SIZE,
    DEFAULT_RECOVERY_S,
    DEFAULT_V_MARGIN_PU,
    MAX_GROUP_SIZE,
)
from sim.errors import BlockhemsError
from sim.protocol import protocol_window_s

SCENARIOS_DIR = Path(__file__).resolve().parents[1] / "scenarios"
DEFAULT_SCENARIO = SCENARIOS_DIR / "default.yaml"
DAY_S = 86_400


class ScenarioError(BlockhemsError, ValueError):
    """A scenario file is missing, unreadable or invalid; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeederSpec(_Strict):
    name: str = Field(description="feeder builder: small, ieee_eu_lv or large")
    options: dict[str, Any] = Field(default_factory=dict, description="builder keyword options")
    own_process: bool = Field(
        default=False,
        description="run the grid simulator in its own process, beside the DSO and the homes "
        "of the next slot (worth it when the power flow takes 0.1 s or more: runpp_3ph)",
    )
    engine: Literal[AC_ENGINES] = Field(
        default=DEFAULT_AC_ENGINE,
        description="engine of the ground-truth power flow: power-grid-model (pgm, fast) or "
        "pandapower runpp_3ph (the cross-check; they agree within 1e-4 pu)",
    )

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from grid_models import FEEDERS

        if name not in FEEDERS:
            raise ValueError(f"unknown feeder {name!r}; valid names: {', '.join(FEEDERS)}")
        return name


class HomesSpec(_Strict):
    count: int | None = Field(
        default=None, ge=1, description="homes; feeders with fixed sites (ieee_eu_lv) must match"
    )
    smart_share: float = Field(default=1.0, ge=0.0, le=1.0, description="share of HEMS homes")
    seed: int = 0
    ranges: dict[str, Any] = Field(
        default_factory=dict, description="appliance parameter ranges (sim.hems ApplianceRanges)"
    )
    load_profile_pool: int | None = Field(default=None, ge=1)
    battery_export: bool = Field(
        default=DEFAULT_BATTERY_EXPORT,
        description="may batteries feed the grid (false: they cover only the home's own load)",
    )
    shards: int = Field(
        default=1,
        ge=1,
        le=64,
        description="HEMS fleet split by aggregation group over this many mosaik simulator "
        "processes (1: in the main process); more than 1 needs a chain other processes reach",
    )


class TimeSpec(_Strict):
    start_date: dt.date = Field(description="first simulated day (weather is the TMY3 day)")
    start_hour: int = Field(default=0, ge=0, le=23, description="hour of the first slot")
    days: int = Field(default=1, ge=1, le=366)
    hours: float | None = Field(default=None, gt=0, description="stop after this many hours")
    slot_s: int = Field(default=900, gt=0, description="timeslot length (s)")

    @field_validator("slot_s")
    @classmethod
    def _divides_day(cls, slot_s: int) -> int:
        if DAY_S % slot_s:
            raise ValueError(f"{slot_s} s does not divide a day ({DAY_S} s)")
        return slot_s

    @property
    def first_slot(self) -> int:
        """Index of the first simulated slot, counted from midnight of start_date."""
        return self.start_hour * 3600 // self.slot_s

    @property
    def n_slots(self) -> int:
        available_s = self.days * DAY_S - self.start_hour * 3600
        total_s = available_s if self.hours is None else min(self.hours * 3600, available_s)
        return max(1, int(total_s // self.slot_s))

    @property
    def day_of_year(self) -> int:
        return min(self.start_date.timetuple().tm_yday, 365)


class ChainSpec(_Strict):
    backend: Literal["embedded", "revm", "hardhat", "rpc"] = Field(
        default="embedded",
        description="embedded eth-tester (py-evm); revm: embedded Rust EVM (pyrevm), same gas, "
        "several times faster; hardhat: a local hardhat node the run starts and stops; or any "
        "JSON-RPC node at url",
    )
    url: str | None = None
    block_time_s: int = Field(default=DEFAULT_BLOCK_TIME_S, ge=1)
    deadline_s: int = Field(
        default=DEFAULT_DEADLINE_S, ge=1, description="submission window after prices (s)"
    )
    recovery_s: int = Field(
        default=DEFAULT_RECOVERY_S, ge=1, description="dropout recovery window (s)"
    )
    dropout_probability: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="chance a home misses a round's submission"
    )
    debug_deterministic_keys: bool = Field(
        default=False,
        description="DEBUG ONLY: derive every key and account from the scenario name and "
        "homes.seed instead of the OS CSPRNG, so that anyone holding the scenario file can "
        "unmask every submission; marked in the results (scenario.yaml, summary.json)",
    )

    @model_validator(mode="after")
    def _url_for_rpc(self) -> ChainSpec:
        if self.backend == "rpc" and not self.url:
            raise ValueError("backend 'rpc' needs url (e.g. http://127.0.0.1:8545)")
        return self


class AggregationSpec(_Strict):
    min_group_size: int = Field(default=DEFAULT_MIN_GROUP_SIZE, ge=2, le=MAX_GROUP_SIZE)
    target_group_size: int | None = Field(default=None, ge=2, le=MAX_GROUP_SIZE)


class DSOSpec(_Strict):
    v_min_pu: float | None = Field(
        default=None, gt=0.5, lt=1.5, description="voltage floor (pu); default: the feeder's"
    )
    v_max_pu: float | None = Field(
        default=None, gt=0.5, lt=1.5, description="voltage ceiling (pu); default: the feeder's"
    )
    ampacity_factor: float = Field(default=1.0, gt=0.0, description="scales every line rating")
    v_margin_pu: float = Field(
        default=DEFAULT_V_MARGIN_PU,
        ge=0.0,
        lt=0.1,
        description="margin the DSO keeps inside the voltage band for what it cannot see: "
        "how each group's total spreads over its homes, forecast errors, linearization",
    )
    i_margin_pct: float = Field(
        default=DEFAULT_I_MARGIN_PCT, ge=0.0, lt=50.0, description="same for ampacity"
    )
    ac_engine: Literal[AC_ENGINES] = Field(
        default=DEFAULT_AC_ENGINE,
        description="engine of the DSO's own AC checks: power-grid-model (fast) or pandapower "
        "runpp_3ph (the grid simulator's engine)",
    )
    energy_price_usd_per_kwh: list[float] = Field(
        default_factory=lambda: [0.12], description="substation price: one value or 24 hourly"
    )
    # The contract carries one lambda per round, so the co-simulation clears the paper's
    # single lambda; the DSO's per-group mode (sim.dso, mode="group") needs a lambda per group
    # on chain first.
    mode: Literal["single"] = "single"

    @field_validator("energy_price_usd_per_kwh")
    @classmethod
    def _one_or_hourly(cls, prices: list[float]) -> list[float]:
        if len(prices) not in (1, 24):
            raise ValueError(f"give one price or 24 hourly prices, got {len(prices)}")
        return prices

    @model_validator(mode="after")
    def _band(self) -> DSOSpec:
        if (
            self.v_min_pu is not None
            and self.v_max_pu is not None
            and self.v_min_pu >= self.v_max_pu
        ):
            raise ValueError(f"v_min_pu {self.v_min_pu} must be below v_max_pu {self.v_max_pu}")
        return self

    def energy_price(self, hour: int) -> float:
        prices = self.energy_price_usd_per_kwh
        return prices[0] if len(prices) == 1 else prices[hour % 24]


class OutputSpec(_Strict):
    plots: bool = True


class Scenario(_Strict):
    name: str
    description: str = ""
    feeder: FeederSpec
    homes: HomesSpec = HomesSpec()
    time: TimeSpec
    chain: ChainSpec = ChainSpec()
    aggregation: AggregationSpec = AggregationSpec()
    dso: DSOSpec = DSOSpec()
    outputs: OutputSpec = OutputSpec()

    @model_validator(mode="after")
    def _shards_reach_the_chain(self) -> Scenario:
        if self.homes.shards > 1 and self.chain.backend == "embedded":
            raise ValueError(
                f"homes.shards = {self.homes.shards}: processes cannot share the embedded "
                "eth-tester chain; use chain.backend revm (it then runs as a local node), "
                "hardhat or rpc"
            )
        return self

    @model_validator(mode="after")
    def _protocol_fits_slot(self) -> Scenario:
        chain = self.chain
        window = protocol_window_s(chain.block_time_s, chain.deadline_s, chain.recovery_s)
        if window >= self.time.slot_s:
            raise ValueError(
                f"chain.deadline_s + chain.recovery_s + 4 blocks = {window} s must fit in one "
                f"slot (time.slot_s = {self.time.slot_s} s)"
            )
        return self


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if not str(part).startswith("function-")) or "(top)"


def _message(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = _location(err["loc"])
        if err["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown key")
        elif err["type"] == "missing":
            problems.append(f"{where}: required key is missing")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if isinstance(err.get("input"), dict):  # a rule across keys: the message names them
                problems.append(msg if where == "(top)" else f"{where}: {msg}")
            else:
                problems.append(f"{where}: {msg} (got {err.get('input')!r})")
    return "; ".join(problems)


def parse_scenario(data: Any, source: str = "scenario") -> Scenario:
    """Validate plain data (e.g. loaded YAML) into a Scenario."""
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{source}: expected a mapping of keys at the top, got {type(data).__name__}"
        )
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        first = _location(exc.errors()[0]["loc"]) if exc.errors() else None
        raise ScenarioError(f"{source}: {_message(exc)}", key=first) from None


def override(scenario: Scenario, changes: dict[str, Any], source: str = "option") -> Scenario:
    """`scenario` with dotted keys replaced (e.g. {"chain.backend": "hardhat"}), validated
    again as a whole, so an override that breaks a rule is reported like a bad file."""
    data = scenario.model_dump(mode="json", exclude_unset=True)
    for dotted, value in changes.items():
        *sections, key = dotted.split(".")
        target = data
        for section in sections:
            target = target.setdefault(section, {})
        target[key] = value
    return parse_scenario(data, f"scenario {scenario.name} with {source}")


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Read and validate a scenario YAML file (the default scenario when `path` is None)."""
    path = Path(path) if path is not None else DEFAULT_SCENARIO
    if not path.exists():
        shipped = ", ".join(sorted(p.name for p in SCENARIOS_DIR.glob("*.yaml")))
        raise ScenarioError(f"scenario file {path} does not exist (shipped: {shipped})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ScenarioError(f"scenario {path.name}: not valid YAML: {exc}") from None
    return parse_scenario(data, f"scenario {path.name}")


def dump_scenario(scenario: Scenario) -> str:
    """The resolved scenario (defaults filled in) as YAML."""
    return yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False)


# Feeder-builder options that the scenario sets from keys of its own (see build_scenario_feeder).
_OPTION_KEYS = {
    "min_group_size": "aggregation.min_group_size",
    "target_group_size": "aggregation.target_group_size",
    "n_homes": "homes.count",
}


def build_scenario_feeder(scenario: Scenario):
    """Build the scenario's feeder; a feeder that cannot satisfy the scenario is a ScenarioError.

    Returns a grid_models.Feeder whose zones honour aggregation.min_group_size.
    """
    from grid_models import GridModelError, build_feeder

    options = dict(scenario.feeder.options)
    options.setdefault("min_group_size", scenario.aggregation.min_group_size)
    if scenario.aggregation.target_group_size is not None:
        options.setdefault("target_group_size", scenario.aggregation.target_group_size)
    if scenario.homes.count is not None and scenario.feeder.name == "large":
        options.setdefault("n_homes", scenario.homes.count)
    try:
        feeder = build_feeder(scenario.feeder.name, **options)
    except GridModelError as exc:
        key = _OPTION_KEYS.get(exc.key, "feeder.options")
        if exc.key in scenario.feeder.options:  # the user set it there
            key = f"feeder.options.{exc.key}"
        raise ScenarioError(f"scenario {scenario.name}: {key}: {exc}", key=key) from None
    if scenario.homes.count is not None and scenario.homes.count != feeder.n_homes:
        raise ScenarioError(
            f"scenario {scenario.name}: homes.count: feeder {scenario.feeder.name} has "
            f"{feeder.n_homes} home sites, got {scenario.homes.count}"
        )
    return feeder


def resolve_scenario(scenario: Scenario, feeder) -> Scenario:
    """The scenario with the feeder's defaults filled in (what a run actually used)."""
    dso = scenario.dso.model_copy(
        update={
            "v_min_pu": scenario.dso.v_min_pu or feeder.v_min_pu,
            "v_max_pu": scenario.dso.v_max_pu or feeder.v_max_pu,
        }
    )
    return scenario.model_copy(update={"dso": dso})
