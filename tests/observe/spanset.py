"""Hand-made span sets shared by the observe tests."""

from __future__ import annotations

from quantfleet.observe.spans import Span, SpanRecorder


def span(stage: str, component: str, worker: str, start: float, end: float, *, items: int = 1,
         ok: bool = True, attempt: int = 1, cpu: float | None = None, node: str = "n1") -> Span:
    return Span(stage=stage, component=component, worker=worker, node=node, start=start,
                end=end, cpu_s=(end - start) * 0.9 if cpu is None else cpu, items=items, ok=ok,
                attempt=attempt)


def decomposition_case() -> SpanRecorder:
    """W=2, wall 10 (window [-1, 9]); hand-computed in test_speedup."""
    return SpanRecorder([
        span("put", "market", "w1", 0.5, 1.0),
        span("put", "market", "w2", 0.5, 1.0),
        span("sweep", "sma_cross", "w1", 1.0, 4.0),
        span("sweep", "sma_cross", "w1", 4.5, 7.0),
        span("sweep", "rsi", "w2", 1.0, 3.0),
        span("sweep", "rsi", "w2", 3.5, 6.0, attempt=2),
        span("evolve/gen:0", "sma_cross", "w1", 8.0, 9.0),
    ])
