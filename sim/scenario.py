"""Scenario files: the YAML schema (pydantic) and its validation.

A scenario names the feeder, the homes, the simulated days, the chain, the aggregation, the
DSO's limits and the outputs. Every mistake is reported as one ScenarioError whose message
names the key (dotted path) and the problem, e.g.

    scenario quick.yaml: time.slot_s: 700 s does not divide a day (86400 s)

Length: the schema, the checks of its content and the safe reading of a file (size, text,
aliases, duplicate keys, depth) are kept together so that one module answers "what does a
scenario file accept"; the reading part (`read_scenario_text`, `load_yaml_text`) is the
candidate to move out first.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import stat
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim.constants import (
    AC_ENGINES,
    DEFAULT_AC_ENGINE,
    DEFAULT_BATTERY_EXPORT,
    DEFAULT_BLOCK_TIME_S,
    DEFAULT_DEADLINE_S,
    DEFAULT_I_MARGIN_PCT,
    DEFAULT_MARKET_MODE,
    DEFAULT_MIN_GROUP_SIZE,
    DEFAULT_RECOVERY_S,
    MARKET_MODES,
    MAX_GROUP_SIZE,
)
from sim.errors import BlockhemsError
from sim.protocol import protocol_window_s

SCENARIOS_DIR = Path(__file__).resolve().parents[1] / "scenarios"
DEFAULT_SCENARIO = SCENARIOS_DIR / "default.yaml"
DAY_S = 86_400


class ScenarioError(BlockhemsError, ValueError):
    """A scenario file is missing, unreadable or invalid; the message names the key."""


# What a scenario file may be: scenarios are a few kB; these bounds keep every rejection of a
# hostile file (huge, binary, alias bombs, deep nesting) well under a second.
MAX_SCENARIO_BYTES = 256 * 1024
MAX_YAML_DEPTH = 16  # a scenario nests 4 deep (homes.ranges.battery_kw: [lo, hi])
MAX_YAML_NODES = 20_000
# Substation energy price bounds ($/kWh): the contract holds prices as int64 micro-$/kWh
# (sim.chain.units, +-9.2e12 $/kWh), and the DLMPs posted add loss, congestion and voltage
# terms to it; the DSO prices from a non-negative energy price (sim.dso.DSO refuses a
# negative one), and above 10 $/kWh (twice the highest wholesale price caps) a run only shows
# the homes at their minimum (lambda = 0) or is a typo.
ENERGY_PRICE_MIN_USD_PER_KWH = 0.0
ENERGY_PRICE_MAX_USD_PER_KWH = 10.0
MAX_SEED = 2**32 - 1  # numpy's legacy seeding (richardsonpy) takes 32-bit seeds
WEATHER_YEAR_DAYS = 365  # the TMY3 year the homes' weather and profiles come from
FEEDER_NAMES = ("small", "ieee_eu_lv", "large")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# Numbers are taken as written: no bool for a number, no 2.0 or "2" for an integer, no nan/inf.
Int = Annotated[int, Field(strict=True)]
Num = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Bool = Annotated[bool, Field(strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FeederSpec(_Strict):
    name: str = Field(description="feeder builder: small, ieee_eu_lv or large")
    options: dict[str, Any] = Field(default_factory=dict, description="builder keyword options")
    own_process: Bool = Field(
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
        # grid_models.FEEDERS has the same names (a test checks); importing it (pandapower)
        # would cost seconds before a file's first mistake is reported
        if name not in FEEDER_NAMES:
            raise ValueError(f"unknown feeder {name!r}; valid names: {', '.join(FEEDER_NAMES)}")
        return name


class HomesSpec(_Strict):
    count: Int | None = Field(
        default=None,
        ge=1,
        le=5000,
        description="homes; feeders with fixed sites (ieee_eu_lv) must match",
    )
    smart_share: Num = Field(default=1.0, ge=0.0, le=1.0, description="share of HEMS homes")
    seed: Int = Field(default=0, ge=0, le=MAX_SEED)
    ranges: dict[str, Any] = Field(
        default_factory=dict, description="appliance parameter ranges (sim.hems ApplianceRanges)"
    )
    load_profile_pool: Int | None = Field(default=None, ge=1, le=100_000)
    battery_export: Bool = Field(
        default=DEFAULT_BATTERY_EXPORT,
        description="may batteries feed the grid (false: they cover only the home's own load)",
    )
    shards: Int = Field(
        default=1,
        ge=1,
        le=64,
        description="HEMS fleet split by aggregation group over this many mosaik simulator "
        "processes (1: in the main process); more than 1 needs a chain other processes reach",
    )


class TimeSpec(_Strict):
    start_date: dt.date = Field(description="first simulated day (weather is the TMY3 day)")
    start_hour: Int = Field(default=0, ge=0, le=23, description="hour of the first slot")
    days: Int = Field(default=1, ge=1, le=WEATHER_YEAR_DAYS)
    hours: Num | None = Field(default=None, gt=0, description="stop after this many hours")
    slot_s: Int = Field(default=900, ge=60, le=DAY_S, description="timeslot length (s)")

    @field_validator("slot_s")
    @classmethod
    def _divides_day(cls, slot_s: int) -> int:
        if DAY_S % slot_s:
            raise ValueError(f"{slot_s} s does not divide a day ({DAY_S} s)")
        if slot_s % 60:
            raise ValueError(f"{slot_s} s is not a whole number of minutes")
        return slot_s

    @model_validator(mode="after")
    def _consistent(self) -> TimeSpec:
        if (self.start_hour * 3600) % self.slot_s:
            raise ValueError(
                f"start_hour {self.start_hour} is not at a slot boundary of slot_s "
                f"{self.slot_s} s (the first slot would start at "
                f"{self.start_hour * 3600 // self.slot_s * self.slot_s // 3600:02d}:00 h)"
            )
        last_day = self.day_of_year + self.days - 1
        if last_day > WEATHER_YEAR_DAYS:
            raise ValueError(
                f"days {self.days} from start_date {self.start_date} (day {self.day_of_year}) "
                f"run past the end of the {WEATHER_YEAR_DAYS}-day weather year (day {last_day})"
            )
        if self.hours is not None:
            available_h = self.days * 24 - self.start_hour
            if self.hours * 3600 < self.slot_s:
                raise ValueError(f"hours {self.hours:g} is shorter than one slot ({self.slot_s} s)")
            if self.hours > available_h:
                raise ValueError(
                    f"hours {self.hours:g} run past the end of days {self.days} from start_hour "
                    f"{self.start_hour} ({available_h} h): raise days"
                )
        return self

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
    rpc_timeout_s: Num = Field(
        default=30.0,
        gt=0.0,
        le=600.0,
        description="longest wait for one answer of a JSON-RPC node (hardhat, rpc, revm with "
        "shards); a node that does not answer in time stops the run",
    )
    block_time_s: Int = Field(default=DEFAULT_BLOCK_TIME_S, ge=1, le=DAY_S)
    deadline_s: Int = Field(
        default=DEFAULT_DEADLINE_S, ge=1, le=DAY_S, description="submission window after prices (s)"
    )
    recovery_s: Int = Field(
        default=DEFAULT_RECOVERY_S, ge=1, le=DAY_S, description="dropout recovery window (s)"
    )
    dropout_probability: Num = Field(
        default=0.0, ge=0.0, lt=1.0, description="chance a home misses a round's submission"
    )
    debug_deterministic_keys: Bool = Field(
        default=False,
        description="DEBUG ONLY: derive every key and account from the scenario name and "
        "homes.seed instead of the OS CSPRNG, so that anyone holding the scenario file can "
        "unmask every submission; marked in the results (scenario.yaml, summary.json)",
    )

    @model_validator(mode="after")
    def _url_for_rpc(self) -> ChainSpec:
        if self.backend == "rpc" and not self.url:
            raise ValueError("backend 'rpc' needs url (e.g. http://127.0.0.1:8545)")
        if self.url is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", self.url):
            raise ValueError(f"url {self.url!r} is not an http:// or https:// JSON-RPC url")
        return self


class AggregationSpec(_Strict):
    min_group_size: Int = Field(default=DEFAULT_MIN_GROUP_SIZE, ge=2, le=MAX_GROUP_SIZE)
    target_group_size: Int | None = Field(default=None, ge=2, le=MAX_GROUP_SIZE)

    @model_validator(mode="after")
    def _target_above_min(self) -> AggregationSpec:
        if self.target_group_size is not None and self.target_group_size < self.min_group_size:
            raise ValueError(
                f"target_group_size {self.target_group_size} is below min_group_size "
                f"{self.min_group_size}"
            )
        return self


class DSOSpec(_Strict):
    v_min_pu: Num | None = Field(
        default=None, gt=0.5, lt=1.5, description="voltage floor (pu); default: the feeder's"
    )
    v_max_pu: Num | None = Field(
        default=None, gt=0.5, lt=1.5, description="voltage ceiling (pu); default: the feeder's"
    )
    ampacity_factor: Num = Field(
        default=1.0, gt=0.0, le=100.0, description="scales every line rating"
    )
    v_margin_pu: Num | None = Field(
        default=None,
        ge=0.0,
        lt=0.1,
        description="margin the DSO keeps inside the voltage band for what it cannot see: "
        "how each group's total spreads over its homes, forecast errors, linearization; "
        "default: the feeder's (0.005 pu, 0.015 on the small feeder)",
    )
    i_margin_pct: Num = Field(
        default=DEFAULT_I_MARGIN_PCT, ge=0.0, lt=50.0, description="same for ampacity"
    )
    ac_engine: Literal[AC_ENGINES] = Field(
        default=DEFAULT_AC_ENGINE,
        description="engine of the DSO's own AC checks: power-grid-model (fast) or pandapower "
        "runpp_3ph (the grid simulator's engine)",
    )
    energy_price_usd_per_kwh: list[Num] = Field(
        default_factory=lambda: [0.12], description="substation price: one value or 24 hourly"
    )
    band_damping: Num = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="share of the last round's price band in each posted band (0: none)",
    )
    mode: Literal[MARKET_MODES] = Field(
        default=DEFAULT_MARKET_MODE,
        description="group: one lambda per aggregation group on five-point bids that carry "
        "their reactive power; paper: the seed paper's one lambda on the two-point band",
    )

    @field_validator("energy_price_usd_per_kwh")
    @classmethod
    def _one_or_hourly(cls, prices: list[float]) -> list[float]:
        if len(prices) not in (1, 24):
            raise ValueError(f"give one price or 24 hourly prices, got {len(prices)}")
        lo, hi = ENERGY_PRICE_MIN_USD_PER_KWH, ENERGY_PRICE_MAX_USD_PER_KWH
        for hour, price in enumerate(prices):
            if not lo <= price <= hi:
                at = "" if len(prices) == 1 else f" (hour {hour})"
                raise ValueError(
                    f"price {price:g} $/kWh{at} is outside [{lo}, {hi}] $/kWh (the contract "
                    "holds prices as int64 micro-$/kWh; the DSO prices from a non-negative one, "
                    "and beyond 10 $/kWh a run is meaningless)"
                )
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
    plots: Bool = True
    # results tables: typed Parquet files, or CSV (sim/results/writer.py)
    format: Literal["parquet", "csv"] = "parquet"


class Scenario(_Strict):
    name: str = Field(description="a slug: the results folder results/<name>")
    description: str = Field(default="", max_length=10_000)
    feeder: FeederSpec
    homes: HomesSpec = HomesSpec()
    time: TimeSpec
    chain: ChainSpec = ChainSpec()
    aggregation: AggregationSpec = AggregationSpec()
    dso: DSOSpec = DSOSpec()
    outputs: OutputSpec = OutputSpec()

    @field_validator("name")
    @classmethod
    def _slug(cls, name: str) -> str:
        if not _NAME_RE.fullmatch(name) or ".." in name:
            raise ValueError(
                "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or "
                "digit and without '..' (it names the results folder)"
            )
        return name

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


def _shown(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _message(exc: ValidationError, most: int = 3, within: tuple[str, ...] = ()) -> str:
    problems = []
    errors = exc.errors()
    for err in errors[:most]:
        where = _location((*within, *err["loc"]))
        if err["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown key")
        elif err["type"] == "missing":
            problems.append(f"{where}: required key is missing")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if isinstance(err.get("input"), dict):  # a rule across keys: the message names them
                problems.append(msg if where == "(top)" else f"{where}: {msg}")
            else:
                problems.append(f"{where}: {msg} (got {_shown(err.get('input'))})")
    if len(errors) > most:
        problems.append(f"and {len(errors) - most} more problems")
    return "; ".join(problems)


# Options of each feeder builder (grid_models.feeders) a scenario may set, with the bounds the
# builders and the run need; anything else is refused before a builder sees it.
class _GroupOptions(_Strict):
    min_group_size: Int | None = Field(default=None, ge=2, le=MAX_GROUP_SIZE)
    max_group_size: Int | None = Field(default=None, ge=2, le=MAX_GROUP_SIZE)
    target_group_size: Int | None = Field(default=None, ge=2, le=MAX_GROUP_SIZE)


class _SmallOptions(_GroupOptions):
    home_kw: Num = Field(default=2.0, gt=0.0, le=50.0)


class _EuLvOptions(_GroupOptions):
    power_factor: Num = Field(default=0.95, gt=0.0, le=1.0)
    source_vm_pu: Num = Field(default=1.0, ge=0.9, le=1.1)


class _LargeOptions(_GroupOptions):
    n_homes: Int = Field(default=1000, ge=10, le=5000)
    seed: Int = Field(default=0, ge=0, le=MAX_SEED)
    phase_shares: tuple[Num, Num, Num] = (0.42, 0.33, 0.25)
    n_main: Int = Field(default=16, ge=1, le=64)


_FEEDER_OPTIONS: dict[str, type[_GroupOptions]] = {
    "small": _SmallOptions,
    "ieee_eu_lv": _EuLvOptions,
    "large": _LargeOptions,
}


def _no_bools(value: Any, where: str) -> None:
    """A bool where the run wants numbers (homes.ranges) is a mistake, never 0 or 1."""
    if isinstance(value, bool):
        raise ScenarioError(f"{where}: {value!r} is not a number", key=where)
    if isinstance(value, dict):
        for k, v in value.items():
            _no_bools(v, f"{where}.{k}")
    elif isinstance(value, list):
        for v in value:
            _no_bools(v, where)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ScenarioError(f"{where}: {value!r} is not a finite number", key=where)


def _check_content(scenario: Scenario, source: str) -> None:
    """Rules across sections that the schema cannot say: feeder options against the
    aggregation rules, the homes' ranges as numbers."""
    feeder, agg = scenario.feeder, scenario.aggregation
    schema = _FEEDER_OPTIONS[feeder.name]
    try:
        options = schema.model_validate(feeder.options)
    except ValidationError as exc:
        within = ("feeder", "options")
        key = _location((*within, *exc.errors()[0]["loc"]))
        message = _message(exc, within=within)
        raise ScenarioError(f"{source}: {message}", key=key) from None
    least = agg.min_group_size
    for option in ("min_group_size", "max_group_size", "target_group_size"):
        value = getattr(options, option)
        if value is not None and value < least:
            key = f"feeder.options.{option}"
            raise ScenarioError(
                f"{source}: {key}: {value} is below aggregation.min_group_size {least}: the "
                f"feeder's zones would be smaller than a group may be",
                key=key,
            )
    low = options.min_group_size or least
    if options.max_group_size is not None and options.max_group_size < low:
        key = "feeder.options.max_group_size"
        raise ScenarioError(
            f"{source}: {key}: {options.max_group_size} is below min_group_size {low}", key=key
        )
    if (
        isinstance(options, _LargeOptions)
        and "n_homes" in feeder.options
        and scenario.homes.count is not None
        and scenario.homes.count != options.n_homes
    ):
        raise ScenarioError(
            f"{source}: feeder.options.n_homes: {options.n_homes} differs from homes.count "
            f"{scenario.homes.count}: set one of them",
            key="feeder.options.n_homes",
        )
    _no_bools(scenario.homes.ranges, "homes.ranges")


def parse_scenario(data: Any, source: str = "scenario") -> Scenario:
    """Validate plain data (e.g. loaded YAML) into a Scenario."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else type(data).__name__
        raise ScenarioError(f"{source}: expected a mapping of keys at the top, got {got}")
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        first = _location(exc.errors()[0]["loc"]) if exc.errors() else None
        raise ScenarioError(f"{source}: {_message(exc)}", key=first) from None
    _check_content(scenario, source)
    return scenario


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


# ------------------------------------------------------------------ reading a file safely

_YamlBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it


class _Refused(ScenarioError):
    """A YAML construct a scenario file may not use (line number, reason); raised inside the
    YAML loader, reported by `load_yaml_text` with the file's name."""

    def __init__(self, mark: Any, reason: str) -> None:
        line = f"line {mark.line + 1}: " if mark is not None else ""
        super().__init__(f"{line}{reason}")


class _StrictLoader(_YamlBase):  # type: ignore[misc, valid-type]
    """Safe YAML that refuses duplicate keys, merge keys and keys that are not text."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if not isinstance(node, yaml.MappingNode):
            raise _Refused(node.start_mark, "expected a mapping")
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(key_node.start_mark, "merge keys (<<) are not allowed")
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise _Refused(key_node.start_mark, f"key {_shown(key)} is not text")
            if key in seen:
                raise _Refused(
                    key_node.start_mark,
                    f"duplicate key {key!r} (first on line {seen[key]}): a key may appear "
                    "once per mapping",
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads 1e-3 or 1.5e13 as text; a scenario means numbers (YAML 1.2 floats)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _check_events(text: str) -> None:
    """Refuse aliases, deep nesting and huge node counts from the event stream, before any
    node is built (so neither an alias bomb nor a bracket bomb costs more than its size)."""
    depth = nodes = 0
    for event in yaml.parse(text, Loader=_YamlBase):
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(
                event.start_mark,
                f"alias *{event.anchor} refused: scenario files may not use anchors and "
                "aliases (write the value out)",
            )
        if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise _Refused(event.start_mark, f"nested deeper than {MAX_YAML_DEPTH} levels")
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            depth -= 1
        nodes += 1
        if nodes > MAX_YAML_NODES:
            raise _Refused(event.start_mark, f"more than {MAX_YAML_NODES} YAML nodes")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def read_scenario_text(path: Path) -> str:
    """The text of a scenario file: a regular file of at most MAX_SCENARIO_BYTES of UTF-8 text."""
    name = f"scenario file {path}"
    try:
        info = path.stat()
    except FileNotFoundError:
        shipped = ", ".join(sorted(p.name for p in SCENARIOS_DIR.glob("*.yaml")))
        raise ScenarioError(f"{name} does not exist (shipped: {shipped})") from None
    except OSError as exc:
        raise ScenarioError(f"{name}: cannot be read: {exc.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ScenarioError(f"{name} is a directory; give a scenario .yaml file")
    if not stat.S_ISREG(info.st_mode):  # a FIFO or device would block or never end
        raise ScenarioError(f"{name} is not a regular file (a device, FIFO or socket)")
    if info.st_size > MAX_SCENARIO_BYTES:
        raise ScenarioError(
            f"{name} is {info.st_size:,} bytes; a scenario file may be at most "
            f"{MAX_SCENARIO_BYTES:,} bytes"
        )
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_SCENARIO_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(f"{name}: cannot be read: {exc.strerror}") from None
    if len(raw) > MAX_SCENARIO_BYTES:  # it grew since stat
        raise ScenarioError(f"{name}: a scenario file may be at most {MAX_SCENARIO_BYTES:,} bytes")
    if b"\x00" in raw:
        raise ScenarioError(f"{name} is a binary file (it holds NUL bytes), not YAML text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            f"{name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None


def load_yaml_text(text: str, source: str) -> Any:
    """Plain data from YAML text, refusing what a scenario never needs (see _check_events)."""
    try:
        _check_events(text)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: not valid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise ScenarioError(f"{source}: nested too deeply") from None


def load_scenario(path: str | Path | None = None) -> Scenario:
    """Read and validate a scenario YAML file (the default scenario when `path` is None)."""
    path = Path(path) if path is not None else DEFAULT_SCENARIO
    source = f"scenario {path.name}"
    data = load_yaml_text(read_scenario_text(path), source)
    return parse_scenario(data, source)


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
            "v_margin_pu": (
                feeder.v_margin_pu if scenario.dso.v_margin_pu is None else scenario.dso.v_margin_pu
            ),
        }
    )
    return scenario.model_copy(update={"dso": dso})
