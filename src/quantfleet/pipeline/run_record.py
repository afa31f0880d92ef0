"""A recorded run read back from the store, whichever command recorded it: its manifest, spans
and summary (what ``profile``, ``cost`` and the report need)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quantfleet.observe.spans import SpanRecorder

__all__ = ["RunRecord", "load_run"]


@dataclass
class RunRecord:
    """A recorded run as profile, cost and the report read it."""

    manifest: Any
    store: Any
    spans: SpanRecorder
    summary: dict[str, Any]

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def wall_s(self) -> float:
        w = self.summary.get("wall_s") or self.manifest.timing.get("wall_s")
        return float(w) if w else max(self.manifest.duration_s or 0.0, 1e-9)

    @property
    def workers(self) -> int:
        w = self.summary.get("workers")
        return int(w) if w else max(1, len({s.worker for s in self.spans if s.worker}))

    @property
    def executor(self) -> str:
        return str(self.summary.get("executor") or self.manifest.executor.get("kind") or "")

    @property
    def baseline(self) -> dict[str, Any] | None:
        return self.summary.get("baseline")


def load_run(store: Any, run: str) -> RunRecord:
    """The run ``run`` (id, unique id prefix or ``latest``) of ``store``, whichever command
    recorded it: its manifest, spans and summary."""
    from quantfleet.errors import QuantfleetError
    from quantfleet.store import Store

    st = Store.open(store)
    m = st.get_run(run)
    spans_h, summary_h = m.output("spans"), m.output("run_summary")
    if spans_h is None or summary_h is None:
        raise QuantfleetError(f"run {m.run_id} in {st.url} has no spans and summary (status "
                              f"{m.status}); it did not finish, or was recorded by record_run "
                              f"without them")
    return RunRecord(manifest=m, store=st,
                     spans=SpanRecorder.from_arrow(st.get_table(spans_h)),
                     summary=st.get_json(summary_h))
