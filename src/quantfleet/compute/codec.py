"""How task results travel between processes: pickle, with float arrays coded losslessly.

The process and Ray executors send results with :func:`dumps`; the driver reads them with
plain ``pickle.loads``. In-process executors (serial) send nothing and code nothing, so no
caller ever sees the coding: a decoded array has the same shape and the same bits (NaN
payloads and -0.0 included) as the one the worker returned, and is writable.

Each C-contiguous float64 array of at least :data:`MIN_SIZE` values is sent as 2-bit codes
per value plus the values no code covers. A value is +0.0, or exactly ``+D[i]`` or ``-D[i]``
where ``D`` holds, per array length, the magnitudes last sent literally at each position by
an earlier array of the same message; anything else is sent as is (and goes into ``D``).
Results of backtests are mostly flat bars (0.0) and bars where a position of ±1 earned the
asset's own return, which another result of the same message on the same asset already sent:
both cost 2 bits instead of 64.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np

__all__ = ["FORMAT", "MIN_SIZE", "dumps"]

FORMAT = "f64-codes-1"
"""Names this coding; mixed into checkpoint fingerprints so another coding never resumes them."""

MIN_SIZE = 1024
"""Arrays with fewer values travel as plain pickles: coding them costs more CPU than their bytes."""


class _Reference:
    """Per array length, the magnitude last sent literally at each position. One instance per
    message: pickle memoizes it, so the reader rebuilds one and every decode of the message
    updates it in the order the writer did."""

    __slots__ = ("by_len",)

    def __init__(self) -> None:
        self.by_len: dict[int, np.ndarray] = {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Reference, ())

    def get(self, n: int) -> np.ndarray:
        d = self.by_len.get(n)
        if d is None:
            d = self.by_len[n] = np.zeros(n)
        return d


_SIGN = np.int64(-(2**63))  # the sign bit of a float64, as int64


def _encode(x: np.ndarray, ref: _Reference) -> tuple[Any, ...]:
    flat = x.reshape(-1)
    d = ref.get(flat.shape[0]).view(np.int64)  # magnitudes: sign bit clear
    bits = flat.view(np.int64)
    zero = bits == 0
    pos = bits == d
    pos &= ~zero
    neg = bits == (d | _SIGN)
    neg &= ~zero
    lit = np.flatnonzero(~(zero | pos | neg))
    values = flat[lit]
    d[lit] = (values.view(np.int64) & ~_SIGN)
    pos[lit] = True
    neg[lit] = True
    # the literals as bytes, not an array: an array would be coded itself, out of order
    return (ref, x.shape, np.packbits(pos), np.packbits(neg), values.tobytes())


def _decode(ref: _Reference, shape: tuple[int, ...], lo: np.ndarray, hi: np.ndarray,
            literals: bytes) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))
    a = np.unpackbits(lo, count=n).view(bool)  # +D or literal
    b = np.unpackbits(hi, count=n).view(bool)  # -D or literal
    d = ref.get(n).view(np.int64)
    out = (d | (b.astype(np.int64) << 63)) * (a | b)  # 0 -> +0.0, +D, -D
    lit = np.flatnonzero(a & b)
    values = np.frombuffer(literals, dtype=np.int64)
    out[lit] = values
    d[lit] = values & ~_SIGN
    return out.view(np.float64).reshape(shape)


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=5)
        self._ref = _Reference()

    def reducer_override(self, obj: Any) -> Any:
        if (type(obj) is np.ndarray and obj.dtype == np.float64 and obj.size >= MIN_SIZE
                and obj.flags.c_contiguous):
            return _decode, _encode(obj, self._ref)
        return NotImplemented


def dumps(obj: Any) -> bytes:
    """``obj`` pickled (protocol 5) with its float64 arrays coded; read it with ``pickle.loads``."""
    buf = io.BytesIO()
    _Pickler(buf).dump(obj)
    return buf.getvalue()
