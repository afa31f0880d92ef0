"""How much faster a run was than its sequential baseline, and where the rest went (layer 4).
"""

from __future__ import annotations

import math
from typing import Any

from quantfleet.errors import QuantfleetError
from quantfleet.observe.heatmap import _pct, _secs, span_frame, timeline
from quantfleet.observe.spans import DRIVER_NODE, speedup_validity

__all__ = ["LOSS_PARTS", "explain_speedup"]

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
        (``"measured"`` or ``"sampled k/n items, stratified by strategy, extrapolated"``);
        None → no speedup, only the idle-time parts

    Driver spans (node ``driver``: the driver's own steps, the baseline itself) are left
    out: the speedup is about the tasks that ran in ``wall_s``. A ratio ``serial_s / wall_s``
    above ``workers`` × ``observe.spans.SPEEDUP_TOLERANCE`` is not a speedup: the result
    then has ``valid`` False, ``invalid_reason``, the raw ``ratio``, and NaN speedup,
    efficiency and loss (never shown as a figure).

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
    df = df[df["node"] != DRIVER_NODE].reset_index(drop=True)
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
    ratio, invalid = math.nan, None
    if serial_base is None:
        speedup = efficiency = loss = residual = math.nan
    else:
        ratio = serial_base / wall_s
        invalid = speedup_validity(ratio, workers)
        speedup = ratio if invalid is None else math.nan
        efficiency = speedup / workers
        loss = 1.0 - efficiency
        residual = loss - sum(parts.values())
    notes = list(tl.notes)
    if invalid is not None:
        notes.append(f"speedup invalid: {invalid}")
    if not measured and baseline is not None:
        notes.append(f"the baseline is {label}: speedup and work_inflation inherit its "
                     f"extrapolation error")
    out = {
        "speedup": speedup, "efficiency": efficiency, "loss": loss,
        "baseline_label": label, "measured": measured, "serial_s": serial_base,
        "valid": serial_base is not None and invalid is None, "invalid_reason": invalid,
        "ratio": ratio,
        "wall_s": wall_s, "workers": workers, "capacity_s": C,
        "busy_s": tl.busy_s, "work_s": tl.work_s,
        "loss_parts": parts, "loss_seconds": secs, "residual": residual, "notes": notes,
    }
    out["text"] = _speedup_text(out)
    return out


def _speedup_text(r: dict[str, Any]) -> str:
    W = r["workers"]
    if r["serial_s"] is None or r["invalid_reason"] is not None:
        head = (f"Speedup: no baseline; of {W} workers × {_secs(r['wall_s'])}, "
                f"{_pct(r['busy_s'] / r['capacity_s'])} was busy")
        if r["invalid_reason"] is not None:
            head = (f"Speedup: invalid ({r['baseline_label']} baseline "
                    f"{_secs(r['serial_s'])}, {r['invalid_reason']}); of {W} workers × "
                    f"{_secs(r['wall_s'])}, {_pct(r['busy_s'] / r['capacity_s'])} was busy")
        parts = {k: v for k, v in r["loss_parts"].items() if k != "work_inflation"}
    else:
        head = (f"Speedup ({r['baseline_label']} baseline {_secs(r['serial_s'])}): "
                f"{r['speedup']:.2f}× on {W} workers, efficiency {_pct(r['efficiency'])}; "
                f"the {_pct(r['loss'])} lost went to")
        parts = r["loss_parts"]
    body = ", ".join(f"{k.replace('_', ' ')} {_pct(v)}" for k, v in parts.items()
                     if abs(v) >= 0.0005)
    plain = r["serial_s"] is None or r["invalid_reason"] is not None
    return head + (": " if plain else " ") + (body or "nothing measurable")
