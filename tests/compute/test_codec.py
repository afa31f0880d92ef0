"""Results crossing processes: float arrays coded losslessly, read back with plain pickle."""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import numpy as np
import pytest

from quantfleet.compute.codec import MIN_SIZE, dumps


@dataclass(frozen=True)
class Box:
    a: np.ndarray
    rest: tuple


def same(x: np.ndarray, y: np.ndarray) -> bool:
    return x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()


def specials(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A reference series and one that repeats it (+, -), is flat, or has odd values."""
    ref = rng.normal(0, 0.01, n)
    x = rng.normal(0, 0.01, n)
    u = rng.random(n)
    x[u < 0.4] = 0.0
    x[(u >= 0.4) & (u < 0.6)] = ref[(u >= 0.4) & (u < 0.6)]
    x[(u >= 0.6) & (u < 0.8)] = -ref[(u >= 0.6) & (u < 0.8)]
    if n >= 8:
        nan_payload = np.array([0x7FF8_0000_0000_0123], np.int64).view(np.float64)[0]
        ref[[1, 2, 6, 7]] = [np.nan, 0.0, -np.nan, -0.0]
        x[[1, 3, 5, 2, 6, 7]] = [np.nan, nan_payload, np.inf, -0.0, -np.nan, 0.0]
    return ref, x


@pytest.mark.parametrize("n", [0, 1, MIN_SIZE - 1, MIN_SIZE, MIN_SIZE + 7, 5000])
def test_round_trip_bit_for_bit(n):
    rng = np.random.default_rng(n)
    ref, x = specials(n, rng)
    y = -x
    obj = {"ref": ref, "x": [x, (y, x.reshape(1, -1))], "box": Box(ref.copy(), (1, "s", 2.5))}
    got = pickle.loads(dumps(obj))
    assert same(got["ref"], ref) and same(got["x"][0], x) and same(got["x"][1][0], y)
    assert same(got["x"][1][1], x.reshape(1, -1)) and same(got["box"].a, ref)
    assert got["box"].rest == (1, "s", 2.5)
    assert all(a.flags.writeable for a in (got["ref"], got["x"][0], got["box"].a))


def test_repeated_values_cost_two_bits_and_other_arrays_travel_plain():
    rng = np.random.default_rng(5)
    ref, x = specials(6000, rng)
    plain = pickle.dumps([ref, x], protocol=5)
    coded = dumps([ref, x])
    assert len(coded) < 0.65 * len(plain)  # x: 80% flat or ± ref
    f32 = np.arange(100, dtype=np.float32)
    strided = np.arange(200.0)[::2]
    ints = np.arange(100)
    got = pickle.loads(dumps([f32, strided, ints, np.float64(-0.0)]))
    assert same(got[0], f32) and same(got[1], np.ascontiguousarray(strided)) and same(got[2], ints)
    assert np.signbit(got[3])


def test_shape_and_memo_are_kept():
    a = np.arange(240.0).reshape(4, 6, 10)
    a[0, 0, 0] = -0.0
    got = pickle.loads(dumps([a, a, a[1]]))
    assert same(got[0], a) and got[0] is got[1] and same(got[2], a[1])


def test_checkpoint_fingerprint_names_the_chunk_format(monkeypatch):
    from quantfleet.compute import chunking

    items = [1, 2, 3]
    before = chunking.fingerprint(same, items, None, "k")
    monkeypatch.setattr(chunking, "CHECKPOINT_FORMAT", "chunks-older")
    assert chunking.fingerprint(same, items, None, "k") != before
