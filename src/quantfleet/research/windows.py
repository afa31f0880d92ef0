"""Walk-forward windows: rolling or anchored train/test splits in bars or in durations."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from quantfleet.errors import QuantfleetError

__all__ = ["Window", "walk_forward"]

_DURATION = re.compile(r"^\s*(\d+)\s*([DWMY])\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Window:
    """One split: train bars ``[train_start, train_end)``, test bars ``[test_start, test_end)``."""

    index: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int


def _to_offset(spec: str) -> np.timedelta64 | tuple[int, str]:
    m = _DURATION.match(spec)
    if not m:
        raise QuantfleetError(
            f"window length {spec!r} is neither a bar count nor a duration; "
            f"use e.g. 252, '90D', '12W', '6M' or '2Y'"
        )
    return int(m.group(1)), m.group(2).upper()


def _advance(ts: np.ndarray, i: int, spec: str | int) -> int:
    """Index of the first bar at or after ``ts[i] + spec`` (spec: bars or a duration)."""
    if isinstance(spec, int):
        return i + spec
    n, unit = _to_offset(spec)
    t0 = ts[i].astype("datetime64[D]")
    if unit == "D":
        t1 = t0 + np.timedelta64(n, "D")
    elif unit == "W":
        t1 = t0 + np.timedelta64(7 * n, "D")
    else:
        months = n * (12 if unit == "Y" else 1)
        m0 = t0.astype("datetime64[M]")
        day = (t0 - m0).astype(int)
        t1 = (m0 + np.timedelta64(months, "M")).astype("datetime64[D]") + np.timedelta64(day, "D")
    return int(np.searchsorted(ts, t1.astype(ts.dtype), side="left"))


def _parse(spec: int | str | None, name: str) -> int | str | None:
    if spec is None or isinstance(spec, int):
        if isinstance(spec, int) and spec < 1:
            raise QuantfleetError(f"{name} must be >= 1 bar (got {spec})")
        return spec
    s = str(spec).strip()
    if s.isdigit():
        return _parse(int(s), name)
    _to_offset(s)
    return s


def walk_forward(timestamps: np.ndarray, train: int | str | None = None,
                 test: int | str | None = None, n_windows: int | None = None,
                 anchored: bool = False, start: int = 0) -> list[Window]:
    """Split ``timestamps[start:]`` into walk-forward windows.

    Give ``train`` and ``test`` (bars, or durations such as ``"2Y"``/``"6M"``), or
    ``n_windows`` K alone (train = test = bars // (K + 1)). Rolling windows move the train
    part with the test part; anchored ones keep every train part starting at ``start``.
    The last test window may be shorter than ``test`` if the data ends first; windows whose
    test part would be empty are dropped.
    """
    n = len(timestamps)
    train, test = _parse(train, "train"), _parse(test, "test")
    if n_windows is not None:
        if n_windows < 1:
            raise QuantfleetError(f"windows must be >= 1 (got {n_windows})")
        if train is None and test is None:
            size = (n - start) // (n_windows + 1)
            if size < 2:
                raise QuantfleetError(
                    f"{n - start} bars cannot make {n_windows} windows; use fewer windows"
                )
            train = test = size
    if train is None or test is None:
        raise QuantfleetError("give both --train and --test, or --windows K")
    out: list[Window] = []
    tr0 = start
    te0 = _advance(timestamps, tr0, train) if tr0 < n else n
    while te0 < n:
        te1 = min(_advance(timestamps, te0, test), n)
        if te1 <= te0:
            break
        out.append(Window(len(out), start if anchored else tr0, te0, te0, te1))
        if n_windows is not None and len(out) == n_windows:
            break
        if not anchored:
            tr0 = _advance(timestamps, tr0, test)
        te0 = te1
    if not out:
        raise QuantfleetError(
            f"no walk-forward window fits: {n - start} bars, train {train}, test {test}; "
            f"use shorter windows or more data"
        )
    return out
