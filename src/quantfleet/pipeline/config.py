"""The pipeline's one configuration file (TOML), validated by one pydantic model.

Every CLI flag of ``quantfleet run`` and of the research commands (``backtest``, ``sweep``,
``tournament``, ``evolve``, ``portfolio``: one-stage runs of the same stages) maps to a field
here; errors name the file and the key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from quantfleet.errors import ConfigError

__all__ = [
    "BacktestConfig",
    "BaselineConfig",
    "Checkpoint",
    "ConfidenceConfig",
    "CostsConfig",
    "DataConfig",
    "EvolutionConfig",
    "ExecutionConfig",
    "ExecutorConfig",
    "Number",
    "PipelineConfig",
    "PortfolioConfig",
    "PrefectConfig",
    "ReportConfig",
    "SweepConfig",
    "TournamentConfig",
    "load_config",
    "validate_config",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    source: str = "sp500"
    assets: list[str] = Field(default_factory=list, description="subset; empty: all")


class ExecutorConfig(_Section):
    kind: Literal["serial", "processes", "ray", "auto"] = "ray"
    workers: int | None = Field(default=None, ge=1)
    ray_address: str | None = None


class CostsConfig(_Section):
    fee_bps: float = Field(default=5.0, ge=0, lt=10_000)
    slippage_bps: float = Field(default=0.0, ge=0, lt=10_000)


class ExecutionConfig(_Section):
    """Execution options every research stage trades on (docs/conventions.md, "Execution
    options"); the defaults are today's convention: fill at the close, no stops."""

    fill: Literal["close", "next_open"] = "close"
    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None
    fraction: float = 1.0
    vol_target: float | None = None
    vol_window: int = 20
    vol_cap: float = 1.0
    borrow_rate: float = 0.0

    @model_validator(mode="after")
    def _valid(self) -> ExecutionConfig:
        from quantfleet.errors import QuantfleetError

        try:
            self.build()
        except QuantfleetError as e:
            raise ValueError(str(e)) from None
        return self

    def build(self) -> Any:
        """The :class:`~quantfleet.backtest.terms.Execution` of these settings."""
        from quantfleet.backtest.terms import Execution

        return Execution(**self.model_dump())


Number = int | float
Checkpoint = str | None
"""A checkpoint directory; ``"auto"``: ``$QUANTFLEET_HOME/checkpoints/<stage>``; None: none."""


class BacktestConfig(_Section):
    """One parameter set of one strategy (``quantfleet backtest``)."""

    enabled: bool = False
    strategy: str = "sma_cross"
    params: dict[str, Number] = Field(default_factory=dict)
    assets: list[str] = Field(default_factory=list, description="subset; empty: all")
    long_short: bool = False
    periods_per_year: float | None = Field(default=None, gt=0)


class SweepConfig(_Section):
    """A parameter grid of one strategy on every asset (``quantfleet sweep``)."""

    enabled: bool = False
    strategy: str = "sma_cross"
    grid: dict[str, list[Number]] = Field(default_factory=dict,
                                          description="missing params use the search range")
    assets: list[str] = Field(default_factory=list)
    metric: str = "sharpe"
    top: int = Field(default=10, ge=1)
    out: str | None = Field(default=None, description="also write every row to this Parquet")
    long_short: bool = False
    periods_per_year: float | None = Field(default=None, gt=0)


class ConfidenceConfig(_Section):
    """How sure are we of the tournament's winner (``research.confidence``; docs/overfit.md):
    stationary-bootstrap intervals of its OOS Sharpe and max drawdown (``n_boot`` resamples,
    two-sided ``level``) and the max-over-pairs permutation p-value (``n_perm`` shifts), all
    drawn from ``seed``."""

    enabled: bool = True
    n_boot: int = Field(default=1000, ge=1, le=1_000_000)
    n_perm: int = Field(default=500, ge=1, le=1_000_000)
    level: float = Field(default=0.95, gt=0, lt=1)
    seed: int = Field(default=0, ge=0)


class TournamentConfig(_Section):
    enabled: bool = True
    strategies: list[str] = Field(default_factory=lambda: ["all"])
    assets: list[str] = Field(default_factory=list)
    train: int | str | None = 504
    test: int | str | None = 126
    windows: int | None = Field(default=None, ge=1, description="K equal windows instead")
    anchored: bool = False
    max_combos: int = Field(default=16, ge=1, le=100_000)
    grid: dict[str, list[Number]] = Field(
        default_factory=dict, description="explicit values shared by every strategy that has "
        "the parameter (the CLI's --grid); its other parameters: their search values")
    grids: dict[str, dict[str, list[Number]]] = Field(
        default_factory=dict, description="explicit values per strategy; wins over grid")
    metric: str = "sharpe"
    long_short: bool = False
    periods_per_year: float | None = Field(default=None, gt=0)
    out: str | None = None
    checkpoint: Checkpoint = "auto"
    confidence: ConfidenceConfig = ConfidenceConfig()
    cv: Literal["walk", "cpcv"] = Field(
        default="walk", description="walk: walk-forward only; cpcv: each pair also "
        "cross-validated by combinatorial purged CV (research.cpcv; docs/overfit.md)")
    groups: int = Field(default=6, ge=2, description="cpcv: N contiguous groups")
    test_groups: int = Field(default=2, ge=1, description="cpcv: k test groups per split")
    embargo: int = Field(default=0, ge=0, description="cpcv: bars after each test group "
                         "left out of training")

    @model_validator(mode="after")
    def _grids_name_parameters(self) -> TournamentConfig:
        """Every grid key names a parameter of a selected strategy, every value list has a
        value; a strategy that no key names keeps the coarse ``max_combos`` grid."""
        _check_grids(self.strategies, self.grid, self.grids)
        if self.cv == "cpcv" and self.test_groups >= self.groups:
            raise ValueError(f"test_groups = {self.test_groups} must be below groups = "
                             f"{self.groups} (cv = 'cpcv'); e.g. groups = 6, test_groups = 2")
        if self.cv == "cpcv":
            from quantfleet.errors import QuantfleetError
            from quantfleet.research.cpcv import Cpcv

            try:  # the settings' other limits (at most MAX_SPLITS splits)
                Cpcv(self.groups, self.test_groups, self.embargo)
            except QuantfleetError as e:
                raise ValueError(str(e)) from None
        return self


class EvolutionConfig(_Section):
    enabled: bool = True
    strategies: list[str] = Field(default_factory=lambda: ["sma_cross", "ema_cross", "rsi"])
    assets: list[str] = Field(default_factory=list)
    searcher: Literal["genetic", "random", "grid", "optuna:tpe", "optuna:cmaes",
                      "optuna:nsgaii", "optuna:random"] = Field(
        default="genetic", description="what proposes the trials (research.evolve.SEARCHERS); "
        "optuna:* need pip install 'quantfleet[search]'")
    population: int = Field(default=40, ge=4, le=100_000)
    generations: int = Field(default=6, ge=1, le=10_000)
    seed: int = 7
    metric: str = "sharpe"
    train_frac: float = Field(default=0.7, gt=0, le=1)
    top: int = Field(default=5, ge=1, description="winners checked out of sample")
    grid: dict[str, list[Number]] = Field(
        default_factory=dict, description="values a parameter may take, shared by every "
        "strategy that has it (the CLI's --grid); other parameters: their search range")
    grids: dict[str, dict[str, list[Number]]] = Field(
        default_factory=dict, description="values per strategy; wins over grid")
    long_short: bool = False
    periods_per_year: float | None = Field(default=None, gt=0)
    # None: the GeneticSearcher's default (searcher = "genetic" only)
    mutation: float | None = None
    crossover: float | None = None
    elite: int | None = None
    immigrants: float | None = None
    checkpoint: Checkpoint = "auto"

    @model_validator(mode="after")
    def _grids_name_parameters(self) -> EvolutionConfig:
        """As the tournament's: every grid key names a parameter of a selected strategy (or
        an execution option, searched like one) and has a value; a strategy that no key names
        searches its whole space."""
        from quantfleet.backtest.terms import SEARCHABLE

        _check_grids(self.strategies, {k: v for k, v in self.grid.items()
                                       if k not in SEARCHABLE or not v}, self.grids)
        return self


def _check_grids(strategies: list[str], grid: dict[str, list[Any]],
                 grids: dict[str, dict[str, list[Any]]]) -> None:
    """Every grid value list has a value and every key names a selected strategy's parameter."""
    for key, values in grid.items():
        if not values:
            raise ValueError(f"grid.{key}: no values; e.g. {key} = [5, 10, 20]")
    for name, spec in grids.items():
        for key, values in spec.items():
            if not values:
                raise ValueError(f"grids.{name}.{key}: no values; e.g. {key} = [5, 10, 20]")
    if not (grid or grids):
        return
    # the registry only when a grid is given: a config without one stays light to load
    from quantfleet.research.tournament import resolve_grids
    from quantfleet.strategies import names as all_names

    names = all_names() if strategies == ["all"] else strategies
    try:
        resolve_grids(names, grid, grids)
    except ValueError as e:
        raise ValueError(str(e)) from None


class PortfolioConfig(_Section):
    enabled: bool = True
    profiles: list[str] = Field(default_factory=lambda: [
        "hrp", "max_sharpe", "min_variance", "risk_parity", "equal_weight"])
    source: Literal["strategies", "assets", "data"] = Field(
        default="strategies", description="every tournament pair, the market's assets, or "
        "data.source read as a returns matrix (prices or an oos_returns file)")
    kind: Literal["auto", "assets", "strategies"] = "auto"
    assets: list[str] = Field(default_factory=list, description="columns; empty: all")
    winners: int | None = Field(
        default=None, ge=1, description="members per rebalancing window, chosen by Sharpe "
        "over that window's train bars; default 10 for source='strategies', every column "
        "otherwise")
    train: int = Field(default=252, ge=20)
    test: int = Field(default=21, ge=1)
    prices: str | None = Field(
        default=None, description="prices (dataset, CSV/Parquet) of the assets a matrix of "
        "strategies read from data.source trades: its buy-and-hold benchmark")
    fee_bps: float | None = Field(default=None, ge=0,
                                  description="None: costs.fee_bps + costs.slippage_bps")
    drift: bool = True
    periods_per_year: float | None = Field(default=None, gt=0)
    out: str | None = None
    # each profile's bootstrap intervals (n_perm unused: a profile has no permutation test)
    confidence: ConfidenceConfig = ConfidenceConfig()
    # None: the profile's default
    covariance: str | None = None
    linkage: str | None = None
    risk_free_rate: float | None = None
    min_weight: float | None = None
    max_weight: float | None = None


class BaselineConfig(_Section):
    """The tournament's sequential baseline (opt-in: it runs the whole tournament again in
    the driver after the parallel run). ``budget_s`` None times every item; seconds: a sample
    stratified by strategy within that budget, extrapolated and labelled ``sampled``."""

    enabled: bool = False
    budget_s: float | None = Field(default=None, gt=0)


class ReportConfig(_Section):
    enabled: bool = True
    open: bool = False
    prices: str | None = Field(default=None, description="price list (JSON shaped like "
                               "quantfleet/observe/instances.json) for the simulated cost; "
                               "None: the bundled catalog")
    instance: str = Field(default="c7i.2xlarge", description="instance type of the simulated "
                          "cost")

    @model_validator(mode="after")
    def _prices_and_instance(self) -> ReportConfig:
        from quantfleet.errors import QuantfleetError
        from quantfleet.observe.cost import get_instance, load_catalog

        try:
            get_instance(self.instance, load_catalog(self.prices))
        except QuantfleetError as e:
            raise ValueError(str(e)) from None
        return self


class PrefectConfig(_Section):
    api_url: str | None = None
    retries: int = Field(default=2, ge=0, le=10)
    retry_delay_s: float = Field(default=1.0, ge=0)


class PipelineConfig(_Section):
    """The whole run: data, research, portfolio, where it runs and where results go."""

    name: str = "quantfleet-run"
    data: DataConfig = DataConfig()
    executor: ExecutorConfig = ExecutorConfig()
    store: str = "lakehouse"
    costs: CostsConfig = CostsConfig()
    execution: ExecutionConfig = ExecutionConfig()
    backtest: BacktestConfig = BacktestConfig()
    sweep: SweepConfig = SweepConfig()
    tournament: TournamentConfig = TournamentConfig()
    evolution: EvolutionConfig = EvolutionConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
    baseline: BaselineConfig = BaselineConfig()
    report: ReportConfig = ReportConfig()
    prefect: PrefectConfig = PrefectConfig()

    @field_validator("store")
    @classmethod
    def _store_not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must be a path or URL, e.g. 'lakehouse' or 's3://bucket/prefix'")
        return v

    def with_overrides(self, overrides: dict[str, Any]) -> PipelineConfig:
        """A copy with dotted-key overrides (``{"executor.kind": "serial"}``), validated."""
        data = self.model_dump()
        for key, value in overrides.items():
            if value is None:
                continue
            node = data
            parts = key.split(".")
            for p in parts[:-1]:
                node = node[p]
            node[parts[-1]] = value
        return _validate(data, "<overrides>")


def validate_config(data: dict[str, Any], where: str) -> PipelineConfig:
    """A config from a dict (e.g. a command's options); errors name ``where`` and the key."""
    return _validate(data, where)


def _validate(data: dict[str, Any], where: str) -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "<root>"
        if err["type"] == "extra_forbidden":
            from quantfleet.errors import did_you_mean

            section = _section_fields(err["loc"][:-1])
            raise ConfigError(
                f"{where}: unknown key {key!r}{did_you_mean(str(err['loc'][-1]), section)}; "
                f"remove it or fix its name"
            ) from None
        if err["type"] == "value_error":  # a validator's own message already names the fix
            raise ConfigError(f"{where}: {key}: {err['ctx']['error']}") from None
        raise ConfigError(f"{where}: {key}: {err['msg']} (got {err.get('input')!r})") from None


def _section_fields(loc: tuple) -> list[str]:
    model: Any = PipelineConfig
    for p in loc:
        field = model.model_fields.get(str(p))
        if field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    return list(getattr(model, "model_fields", {}))


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a TOML config; errors name the file and the key."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: config file not found; see docs/pipeline.md for an example")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    return _validate(data, str(p))
