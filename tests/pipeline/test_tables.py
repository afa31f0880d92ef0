"""The tables the data and backtest stages store, built without pandas, against the same
tables built by pyarrow's and pandas' own conversions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa

from quantfleet.data import load
from quantfleet.pipeline.stages import _backtest_table, market_table
from quantfleet.store.artifacts import table_bytes


def test_market_table_is_the_pa_array_table():
    m = load("synthetic:gbm?bars=50&assets=3&seed=1&funding=1")
    ts = pa.array(np.asarray(m.timestamps).astype("datetime64[ns]"))
    batches = []
    for a, name in enumerate(m.assets):
        cols = [ts, pa.repeat(pa.scalar(str(name)), len(ts))]
        cols += [pa.array(np.asarray(m.field(f)[a])) for f in m.columns()]
        batches.append(pa.RecordBatch.from_arrays(cols, ["timestamp", "asset", *m.columns()]))
    want = pa.Table.from_batches(batches)
    got = market_table(m)
    assert got.schema == want.schema and got.equals(want)
    assert table_bytes(got) == table_bytes(want)  # the same artifact hash


def test_backtest_table_is_the_dataframes_table():
    ex = {"fill": "close", "stop_loss": None}
    rows = [{"strategy": "sma_cross", "asset": a, "params": {"slow": 20, "fast": 5},
             "bars": 100, "fee_bps": 0, "long_short": False, "execution": ex,
             "sharpe": s, "n_trades": 3.0} for a, s in (("A", 0.5), ("B", float("nan")))]
    flat = [{**{k: v for k, v in r.items() if k not in ("params", "execution")},
             "params": json.dumps(r["params"], sort_keys=True),
             "execution": json.dumps(r["execution"], sort_keys=True)} for r in rows]
    want = pa.Table.from_pandas(pd.DataFrame(flat)).replace_schema_metadata(None)
    got = _backtest_table(rows)
    assert got.schema == want.schema and got.equals(want)
    # a value table_from_rows does not type: the DataFrame itself, as before
    odd = [{**rows[0], "bars": [1, 2]}]
    assert isinstance(_backtest_table(odd), pd.DataFrame)
