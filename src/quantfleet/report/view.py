"""What one run produced, as the report reads it (:class:`RunView`), and its one persisted
form: a ``report_view`` artifact of the run in the store (a JSON document whose tables are
Parquet artifacts of kind ``report_frame``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quantfleet.errors import QuantfleetError

if TYPE_CHECKING:  # pandas only when a view is built or loaded
    import pandas as pd

__all__ = ["FORMAT", "RunView", "load_view", "save_view"]

FORMAT = "quantfleet.report.view/2"

_JSON_PARTS = ("summary", "lineage", "evolution_history", "evolution_winners", "overfit",
               "bottlenecks", "break_even", "speedup", "portfolio_notes", "cost_assumptions",
               "workers", "confidence", "stability")
_FRAME_PARTS = ("leaderboard", "oos_returns", "portfolio_returns", "portfolio_metrics", "heatmap",
                "utilisation", "cost_what_if", "portfolio_members", "asset_returns", "cpcv")


@dataclass
class RunView:
    """What one run produced, as the report reads it. Every part but ``run_id`` is optional.

    Parameters
    ----------
    run_id : str
        The run's id (shown in the title).
    summary : dict
        ``name, status, created, finished, config (dict), executor, workers, data_source,
        store_url, code_version``; any other keys are shown too.
    lineage : list of dict
        One per pipeline step: ``step, inputs {name: hash}, outputs {name: hash}, settings``.
    leaderboard : DataFrame, optional
        One row per strategy x asset, best first: ``strategy, asset, windows,
        oos_total_return, oos_sharpe, oos_max_drawdown, mean_is_sharpe, mean_oos_sharpe,
        pair_pbo, pair_dsr, pair_verdict, bh_total_return, bh_sharpe, excess_total_return,
        excess_sharpe`` (any subset; other columns are shown as they are; ``dsr``/``pbo`` and
        ``pair_dsr``/``pair_pbo`` cells are graded); or a sweep's top rows.
    oos_returns : DataFrame, optional
        DatetimeIndex x "strategy/asset" per-bar out-of-sample returns; the report draws the
        equity curves of the top ``top`` leaderboard rows.
    evolution_history : list of dict, optional
        Per generation: ``round, best, mean, median, diversity, evaluated, failed, wall_s``.
    evolution_winners : list of dict, optional
        ``strategy, params (dict), is_sharpe, oos_sharpe``.
    overfit : dict, optional
        Overfitting statistics and their plain-words ``verdict`` line(s) (str or list of str).
    confidence : dict, optional
        How sure we are of the tournament's winner: ``TournamentResult.confidence``
        (``strategy, asset, sharpe, sharpe_ci, max_drawdown, max_drawdown_ci, level, p_value,
        n_pairs, block_length, n_boot, n_perm, seed``...; docs/overfit.md, "How sure are we?").
    stability : list of dict, optional
        Each strategy's parameter-stability block: ``TournamentResult.stability`` (``strategy,
        metric, params, values, map, chosen_params, plateau_drop, neighbours, stable``...;
        docs/overfit.md, "Parameter stability").
    cpcv : DataFrame, optional
        A tournament run with ``cv = "cpcv"``: one row per strategy x asset,
        ``research.cpcv.CPCV_SUMMARY_COLUMNS`` (PBO over the splits, the φ out-of-sample
        paths' Sharpe distribution; docs/overfit.md, "Combinatorial purged cross-validation").
    portfolio_weights : dict of str to DataFrame, optional
        Profile -> (window start x asset) target weights.
    portfolio_returns : DataFrame, optional
        DatetimeIndex x profile out-of-sample per-bar returns.
    portfolio_metrics : DataFrame, optional
        Profile (index, or a ``profile`` column) x metrics.
    portfolio_notes : list of str, optional
        How the portfolio's members were chosen and what its buy-and-hold benchmark holds.
    portfolio_members : DataFrame, optional
        One row per column ever chosen as a member: ``column, windows, share`` (of windows).
    heatmap : DataFrame, optional
        Stage (index) x component (columns), seconds.
    utilisation : DataFrame, optional
        Worker (index) x time bin (columns), busy fraction in [0, 1].
    bottlenecks : list of dict, optional
        Each ``title, text, value``.
    cost_what_if : DataFrame, optional
        One row per cluster size: ``nodes, wall_s, cost_usd, ...``.
    break_even : dict, optional
        Break-even figures (e.g. ``nodes, wall_s, cost_usd, text``), shown as a table.
    asset_returns : DataFrame, optional
        DatetimeIndex x asset per-bar close-to-close returns of the assets of the top
        leaderboard rows (the equity plot draws their buy-and-hold).
    cost_assumptions : dict, optional
        What ``observe.cost.describe`` returns: ``label`` ("simulated from <catalog> of
        <date>, approximate list prices; assumes ..."), ``catalog`` {file, version, date,
        source}, ``instance``, ``spot``, ``assumptions`` {name: value}.
    workers : list of dict, optional
        ``name`` (the utilisation row: "node N / worker I"), ``node``, ``worker`` (the ids).
    speedup : dict, optional
        What ``observe.speedup.explain_speedup`` returns: ``speedup, efficiency, loss,
        baseline_label, serial_s, wall_s, workers, loss_parts, loss_seconds {name: worker-s},
        notes, text`` (any subset).
    """

    run_id: str
    summary: dict = field(default_factory=dict)
    lineage: list[dict] = field(default_factory=list)
    leaderboard: pd.DataFrame | None = None
    oos_returns: pd.DataFrame | None = None
    evolution_history: list[dict] | None = None
    evolution_winners: list[dict] | None = None
    overfit: dict | None = None
    confidence: dict | None = None
    stability: list[dict] | None = None
    cpcv: pd.DataFrame | None = None
    portfolio_weights: dict[str, pd.DataFrame] | None = None
    portfolio_returns: pd.DataFrame | None = None
    portfolio_metrics: pd.DataFrame | None = None
    portfolio_notes: list[str] | None = None
    portfolio_members: pd.DataFrame | None = None
    heatmap: pd.DataFrame | None = None
    utilisation: pd.DataFrame | None = None
    bottlenecks: list[dict] | None = None
    cost_what_if: pd.DataFrame | None = None
    break_even: dict | None = None
    speedup: dict | None = None
    asset_returns: pd.DataFrame | None = None
    cost_assumptions: dict | None = None
    workers: list[dict] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.run_id, str) or not self.run_id:
            raise TypeError(f"RunView.run_id must be a non-empty str (got {self.run_id!r})")


def _check_frame(df: Any, name: str) -> None:
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"RunView.{name} must be a pandas DataFrame or None "
                        f"(got {type(df).__name__})")


def _json_default(o: Any) -> Any:
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if hasattr(o, "tolist"):  # numpy arrays and scalars
        return o.tolist()
    if isinstance(o, (set, frozenset)):
        return sorted(o, key=str)
    return str(o)


def _frame_bytes(df: pd.DataFrame) -> tuple[bytes, dict[str, Any]]:
    """Parquet needs string column names and plain cells: record what to undo on read."""
    import io

    import pandas as pd

    meta: dict[str, Any] = {}
    out = df.copy()
    if isinstance(out.columns, pd.MultiIndex):
        out.columns = ["/".join(map(str, c)) for c in out.columns]
    cols = out.columns
    if not all(isinstance(c, str) for c in cols):
        meta["columns"] = ("datetime" if isinstance(cols, pd.DatetimeIndex)
                           else "int" if pd.api.types.is_integer_dtype(cols)
                           else "float" if pd.api.types.is_float_dtype(cols) else "str")
        out.columns = [c.isoformat() if hasattr(c, "isoformat") else str(c) for c in cols]
    json_cols = [c for c in out.columns if out[c].dtype == object
                 and out[c].map(lambda v: isinstance(v, (dict, list, tuple))).any()]
    for c in json_cols:
        out[c] = out[c].map(lambda v: None if v is None else json.dumps(v, default=_json_default))
    if json_cols:
        meta["json_columns"] = json_cols
    buf = io.BytesIO()
    out.to_parquet(buf)
    return buf.getvalue(), meta


def _frame_from(data: bytes, meta: dict[str, Any]) -> pd.DataFrame:
    import io

    import pandas as pd

    df = pd.read_parquet(io.BytesIO(data))
    for c in meta.get("json_columns", []):
        df[c] = df[c].map(lambda v: None if v is None else json.loads(v))
    kind = meta.get("columns")
    if kind == "datetime":
        df.columns = pd.to_datetime(df.columns)
    elif kind == "int":
        df.columns = df.columns.astype("int64")
    elif kind == "float":
        df.columns = df.columns.astype("float64")
    return df


def save_view(view: RunView, store: Any) -> Any:
    """Put ``view`` in ``store``: each table as a ``report_frame`` artifact, then the document
    (kind ``report_view``) naming them. Returns the document's ArtifactRef."""
    doc: dict[str, Any] = {"format": FORMAT, "run_id": view.run_id}
    for name in _JSON_PARTS:
        value = getattr(view, name)
        if value is not None:
            doc[name] = json.loads(json.dumps(value, default=_json_default))
    frames: dict[str, Any] = {}

    def put(df: Any, where: str) -> dict[str, Any]:
        _check_frame(df, where)
        data, meta = _frame_bytes(df)
        return {"hash": store.put_bytes(data, kind="report_frame").hash, **meta}

    for name in _FRAME_PARTS:
        if getattr(view, name) is not None:
            frames[name] = put(getattr(view, name), name)
    if view.portfolio_weights is not None:
        # a list, not an object: the store's canonical JSON sorts keys, profiles keep order
        frames["portfolio_weights"] = [[str(p), put(df, f"portfolio_weights[{p!r}]")]
                                       for p, df in view.portfolio_weights.items()]
    doc["frames"] = frames
    return store.put_json(doc, kind="report_view")


def load_view(store: Any, ref: Any) -> RunView:
    """The :class:`RunView` that :func:`save_view` put in ``store`` as ``ref``."""
    doc = store.get_json(ref)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not doc.get("run_id"):
        raise QuantfleetError(f"artifact {getattr(ref, 'hash', ref)} is not a report view "
                              f"(expected format {FORMAT!r}); rebuild it with "
                              f"`quantfleet report RUN`")
    kw: dict[str, Any] = {name: doc[name] for name in _JSON_PARTS if doc.get(name) is not None}
    frames = doc.get("frames") or {}
    for name in _FRAME_PARTS:
        if name in frames:
            kw[name] = _frame_from(store.get_bytes(frames[name]["hash"]), frames[name])
    if "portfolio_weights" in frames:
        kw["portfolio_weights"] = {p: _frame_from(store.get_bytes(m["hash"]), m)
                                   for p, m in frames["portfolio_weights"]}
    return RunView(run_id=str(doc["run_id"]), **kw)
