"""Chunk sizing, chunk plans and the Span record."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from quantfleet.compute import ChunkPlan, plan_chunk_size
from quantfleet.errors import ExecutionError
from quantfleet.observe.spans import SPAN_FIELDS, Span, SpanRecorder, SpanTimer


def test_chunk_size_from_cost_with_bounds():
    # 1 ms items, 0.1 s target -> 100 per task, under the cap 10_000 / (2 * 4)
    assert plan_chunk_size(10_000, 2, 0.001) == 100
    # the cap keeps 4 tasks per worker
    assert plan_chunk_size(100, 2, 0.0001) == 13
    # slow items: one per task
    assert plan_chunk_size(100, 2, 5.0) == 1
    assert plan_chunk_size(100, 2, None) == 13
    assert plan_chunk_size(10_000, 2, 0.001, max_size=50) == 50
    assert plan_chunk_size(10, 2, 5.0, min_size=3) == 3
    assert plan_chunk_size(0, 2, None) == 1
    with pytest.raises(ExecutionError, match="target_task_s must be positive"):
        plan_chunk_size(10, 2, 0.1, target_task_s=0)


def test_chunk_plan_ranges_cover_items_once():
    for n, size, head in [(10, 3, 0), (10, 3, 1), (1, 5, 1), (7, 7, 0), (0, 2, 1)]:
        r = ChunkPlan(n, size, head).ranges()
        flat = [i for a, b in r for i in range(a, b)]
        assert flat == list(range(n))
    assert ChunkPlan(10, 3, 1).ranges()[:2] == [(0, 1), (1, 4)]


@pytest.mark.parametrize("n,size,head,workers", [(180, 23, 0, 2), (180, 23, 1, 2), (5, 9, 0, 4),
                                                 (1000, 40, 1, 8), (0, 3, 0, 2)])
def test_guided_plan_shrinks_chunks_towards_the_end(n, size, head, workers):
    r = ChunkPlan(n, size, head, guided=workers).ranges()
    assert [i for a, b in r for i in range(a, b)] == list(range(n))
    sizes = [b - a for a, b in r[head:]]
    assert all(s <= size for s in sizes)
    assert sizes == sorted(sizes, reverse=True) or sizes[-1] < math.ceil(size / 8)  # a short rest
    # each chunk takes ceil(remaining / (2 W)) items within [ceil(size / 8), size]
    pos = r[head][0] if len(r) > head else n
    for a, b in r[head:]:
        want = max(math.ceil(size / 8), min(size, math.ceil((n - pos) / (2 * workers))))
        assert b - a == min(want, n - pos)
        pos = b
    assert ChunkPlan(180, 23, 0, guided=2).ranges()[:1] == [(0, 23)]
    assert len(ChunkPlan(180, 23, 0, guided=2).ranges()) < len(ChunkPlan(180, 3, 0).ranges())


def _span(**kw):
    base = dict(stage="s", component="c", worker="1", node="h", start=1.0, end=3.5,
                cpu_s=2.0, items=4, ok=True, attempt=1)
    return Span(**{**base, **kw})


def test_span_recorder_round_trips_through_arrow_and_dicts():
    rec = SpanRecorder([_span(), _span(ok=False, attempt=2, cpu_s=math.nan, worker="")])
    t = rec.to_arrow()
    assert t.column_names == list(SPAN_FIELDS) and t.num_rows == 2
    back = SpanRecorder.from_arrow(t)
    assert back.spans[0] == rec.spans[0] and math.isnan(back.spans[1].cpu_s)
    assert SpanRecorder.from_dicts(rec.to_dicts()).spans[0] == rec.spans[0]
    assert rec.spans[0].duration == 2.5 and rec.total("items") == 8 and rec.total("cpu_s") == 2.0
    assert list(rec.to_pandas().columns) == list(SPAN_FIELDS)
    with pytest.raises(KeyError, match="lacks"):
        Span.from_dict({"stage": "x"})
    with pytest.raises(TypeError, match="expects a Span"):
        rec.add({"stage": "x"})


def test_span_timer_measures_wall_and_cpu():
    t = SpanTimer()
    sum(i * i for i in range(200_000))
    s = t.finish(stage="a", component="b", worker="w", node="n", items=1, ok=True, attempt=1)
    assert s.end >= s.start and s.cpu_s > 0


def test_compute_and_spans_import_slim():
    code = ("import quantfleet.compute, quantfleet.observe.spans, sys, json;"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mods = {m.split(".")[0] for m in json.loads(out.stdout)}
    assert not mods & {"ray", "rich", "pyarrow", "pandas", "numba"}, mods & {"ray", "rich"}
