"""How much faster a run was than its sequential baseline, and where the rest went.

Layer 4. Also the run directory reader (:func:`load_run`) that ``quantfleet profile`` and
``quantfleet cost`` use — the one place that knows how a run is found.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quantfleet.errors import QuantfleetError
from quantfleet.observe.heatmap import _pct, _secs, span_frame, timeline
from quantfleet.observe.spans import SpanRecorder

__all__ = ["LOSS_PARTS", "RunData", "explain_speedup", "load_run", "save_run"]

#: the parts of the efficiency loss, in the order they are reported
LOSS_PARTS = ("serial", "overhead", "imbalance", "transfer", "retries", "work_inflation")


def _baseline_label(baseline: dict[str, Any] | None) -> tuple[str, bool]:
    if baseline is None:
        return "none", False
    kind = str(baseline.get("baseline_kind", "measured"))
    return kind, kind == "measured"


def explain_speedup(spans: Any, wall_s: float, workers: int,
                    baseline: dict[str, Any] | None) -> dict[str, Any]:
    """Speedup, efficiency and the loss ``1 − efficiency`` split into its causes.

    Parameters
    ----------
    spans : the run's spans (SpanRecorder, DataFrame, Arrow table or Span list)
    wall_s : the run's wall time in seconds (driver clock)
    workers : the parallelism the run had (W)
    baseline : ``research.baseline`` dict with ``serial_s`` and ``baseline_kind``
        (``"measured"`` or ``"sampled k/n items, extrapolated"``); None → no speedup,
        only the idle-time parts

    Returns
    -------
    dict with ``speedup = serial_s / wall_s``, ``efficiency = speedup / W``, ``loss``,
    ``baseline_label``, ``measured``, ``loss_parts`` (fractions of W × wall, keys
    :data:`LOSS_PARTS`), ``loss_seconds`` (worker-seconds), ``residual`` (loss − ∑ parts;
    0 up to rounding unless the spans outlast ``wall_s``), ``notes`` and ``text``.
    The identity: ``W × wall = serial_s + serial + overhead + imbalance + transfer +
    retries + work_inflation`` (worker-seconds), where ``work_inflation`` = compute task
    time − ``serial_s`` (negative when tasks ran faster than the baseline).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise QuantfleetError(f"workers must be a whole number >= 1 (got {workers!r})")
    if wall_s is None or not math.isfinite(float(wall_s)) or float(wall_s) <= 0:
        raise QuantfleetError(f"wall_s must be > 0 seconds (got {wall_s!r})")
    wall_s = float(wall_s)
    df = span_frame(spans)
    tl = timeline(df, wall_s, workers)
    label, measured = _baseline_label(baseline)
    serial_base = None
    if baseline is not None:
        if baseline.get("serial_s") is None or not math.isfinite(float(baseline["serial_s"])):
            raise QuantfleetError(f"baseline lacks a finite serial_s (got keys "
                                  f"{sorted(baseline)}); see research.baseline.measure_serial")
        serial_base = float(baseline["serial_s"])
    C = workers * wall_s
    secs = {"serial": tl.serial_s, "overhead": tl.overhead_s, "imbalance": tl.imbalance_s,
            "transfer": tl.transfer_s, "retries": tl.retry_s,
            "work_inflation": (tl.work_s - serial_base) if serial_base is not None else math.nan}
    parts = {k: v / C for k, v in secs.items()}
    if serial_base is None:
        speedup = efficiency = loss = residual = math.nan
    else:
        speedup = serial_base / wall_s
        efficiency = speedup / workers
        loss = 1.0 - efficiency
        residual = loss - sum(parts.values())
    notes = list(tl.notes)
    if not measured and baseline is not None:
        notes.append(f"the baseline is {label}: speedup and work_inflation inherit its "
                     f"extrapolation error")
    out = {
        "speedup": speedup, "efficiency": efficiency, "loss": loss,
        "baseline_label": label, "measured": measured, "serial_s": serial_base,
        "wall_s": wall_s, "workers": workers, "capacity_s": C,
        "busy_s": tl.busy_s, "work_s": tl.work_s,
        "loss_parts": parts, "loss_seconds": secs, "residual": residual, "notes": notes,
    }
    out["text"] = _speedup_text(out)
    return out


def _speedup_text(r: dict[str, Any]) -> str:
    W = r["workers"]
    if r["serial_s"] is None:
        head = (f"Speedup: no baseline; of {W} workers × {_secs(r['wall_s'])}, "
                f"{_pct(r['busy_s'] / r['capacity_s'])} was busy")
        parts = {k: v for k, v in r["loss_parts"].items() if k != "work_inflation"}
    else:
        head = (f"Speedup ({r['baseline_label']} baseline {_secs(r['serial_s'])}): "
                f"{r['speedup']:.2f}× on {W} workers, efficiency {_pct(r['efficiency'])}; "
                f"the {_pct(r['loss'])} lost went to")
        parts = r["loss_parts"]
    body = ", ".join(f"{k.replace('_', ' ')} {_pct(v)}" for k, v in parts.items()
                     if abs(v) >= 0.0005)
    return head + (": " if r["serial_s"] is None else " ") + (body or "nothing measurable")


# ----------------------------------------------------------------------------- run dirs


@dataclass
class RunData:
    """What ``profile`` and ``cost`` need of a run."""

    path: Path
    spans: SpanRecorder
    wall_s: float
    workers: int
    executor: str = ""
    baseline: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def load_run(path: str | Path) -> RunData:
    """Read a run directory: ``spans.parquet`` (``SpanRecorder.to_arrow``) and ``run.json``
    with ``wall_s`` (required), ``workers`` (default: distinct workers in the spans),
    ``executor`` and ``baseline`` (a ``research.baseline`` dict or null).

    The single place that resolves RUN for the CLI (artifact-store ids later).
    """
    p = Path(path)
    hint = "a run directory holds spans.parquet and run.json (e.g. a pipeline run's folder)"
    if not p.exists():
        raise QuantfleetError(f"run {str(path)!r}: no such directory; {hint}")
    if not p.is_dir():
        raise QuantfleetError(f"run {str(path)!r} is a file, not a directory; {hint}")
    for name in ("spans.parquet", "run.json"):
        if not (p / name).is_file():
            raise QuantfleetError(f"run {str(path)!r}: {name} is missing; {hint}")
    try:
        meta = json.loads((p / "run.json").read_text())
    except (OSError, ValueError) as e:
        raise QuantfleetError(f"run {str(path)!r}: run.json is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise QuantfleetError(f"run {str(path)!r}: run.json must hold an object with wall_s")
    try:
        import pyarrow.parquet as pq

        spans = SpanRecorder.from_arrow(pq.read_table(p / "spans.parquet"))
    except (OSError, KeyError, ValueError) as e:
        raise QuantfleetError(f"run {str(path)!r}: spans.parquet cannot be read as spans "
                              f"({e})") from None
    wall = meta.get("wall_s")
    if isinstance(wall, bool) or not isinstance(wall, (int, float)) or not (
            math.isfinite(wall) and wall > 0):
        raise QuantfleetError(f"run {str(path)!r}: run.json wall_s must be a number > 0 "
                              f"(got {wall!r})")
    workers = meta.get("workers")
    if workers is None:
        workers = max(1, len({s.worker for s in spans if s.worker}))
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise QuantfleetError(f"run {str(path)!r}: run.json workers must be a whole number "
                              f">= 1 (got {workers!r})")
    baseline = meta.get("baseline")
    if baseline is not None and not (isinstance(baseline, dict) and "serial_s" in baseline):
        raise QuantfleetError(f"run {str(path)!r}: run.json baseline must be null or an "
                              f"object with serial_s (got {baseline!r})"[:300])
    return RunData(path=p, spans=spans, wall_s=float(wall), workers=workers,
                   executor=str(meta.get("executor") or ""), baseline=baseline, meta=meta)


def save_run(path: str | Path, spans: SpanRecorder, wall_s: float, workers: int,
             executor: str = "", baseline: dict[str, Any] | None = None,
             **meta: Any) -> Path:
    """Write a run directory that :func:`load_run` reads (creates ``path``)."""
    import pyarrow.parquet as pq

    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    pq.write_table(spans.to_arrow(), p / "spans.parquet")
    run = {**meta, "wall_s": float(wall_s), "workers": int(workers), "executor": executor,
           "baseline": baseline}
    (p / "run.json").write_text(json.dumps(run, indent=1, default=str))
    return p
