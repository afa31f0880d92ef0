"""The pipeline's one configuration file (TOML), validated by one pydantic model.

Every CLI flag of ``quantfleet run`` maps to a field here; errors name the file and the key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from quantfleet.errors import ConfigError

__all__ = ["PipelineConfig", "load_config"]


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


class TournamentConfig(_Section):
    enabled: bool = True
    strategies: list[str] = Field(default_factory=lambda: ["all"])
    train: int | str = 504
    test: int | str = 126
    anchored: bool = False
    max_combos: int = Field(default=16, ge=1, le=100_000)
    metric: str = "sharpe"
    long_short: bool = False


class EvolutionConfig(_Section):
    enabled: bool = True
    strategies: list[str] = Field(default_factory=lambda: ["sma_cross", "ema_cross", "rsi"])
    population: int = Field(default=40, ge=4, le=100_000)
    generations: int = Field(default=6, ge=1, le=10_000)
    seed: int = 7
    metric: str = "sharpe"
    train_frac: float = Field(default=0.7, gt=0, le=1)


class PortfolioConfig(_Section):
    enabled: bool = True
    profiles: list[str] = Field(default_factory=lambda: [
        "hrp", "max_sharpe", "min_variance", "risk_parity", "equal_weight"])
    source: Literal["strategies", "assets"] = "strategies"
    winners: int = Field(default=10, ge=2, description="strategy/asset series in the matrix")
    train: int = Field(default=252, ge=20)
    test: int = Field(default=21, ge=1)


class ReportConfig(_Section):
    enabled: bool = True
    open: bool = False


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
    tournament: TournamentConfig = TournamentConfig()
    evolution: EvolutionConfig = EvolutionConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
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
