"""A run recorded in a store with given spans, as every command records one (the ``spans``
and ``run_summary`` artifacts), for the profile and cost commands to find by id."""

from __future__ import annotations

from typing import Any

from quantfleet.store import Store


def recorded_run(url: str, spans: Any, wall_s: float, workers: int, executor: str = "",
                 baseline: dict | None = None, command: str = "tournament") -> str:
    st = Store.open(url)
    m = st.start_run(command, config={}, executor={"kind": executor})
    m.attach("spans", st.put_table(spans.to_arrow(), kind="spans"))
    m.attach("summary", st.put_json({"run_id": m.run_id, "wall_s": wall_s, "workers": workers,
                                     "executor": executor, "baseline": baseline,
                                     "stages": {}}, kind="run_summary"))
    st.finish_run(m)
    return m.run_id
