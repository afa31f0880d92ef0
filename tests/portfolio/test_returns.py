from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantfleet.data.market import MarketData
from quantfleet.errors import DataError
from quantfleet.portfolio import (
    ReturnsMatrix,
    from_assets,
    from_strategies,
    read_returns,
    returns_matrix,
)


def _market(close: np.ndarray) -> MarketData:
    ts = np.datetime64("2020-01-01", "ns") + np.arange(close.shape[1]) * np.timedelta64(1, "D")
    return MarketData(timestamps=ts, assets=tuple(f"A{i}" for i in range(close.shape[0])),
                      close=close, source="test")


def test_from_assets_matches_pct_change(sp500):
    rm = from_assets(sp500, ["AAPL", "AMD"])
    px = pd.DataFrame(sp500.close[[sp500.asset_index("AAPL"), sp500.asset_index("AMD")]].T,
                      index=pd.DatetimeIndex(sp500.timestamps))
    np.testing.assert_allclose(rm.values(), px.pct_change().iloc[1:].to_numpy(), rtol=0, atol=0)
    assert rm.returns.index[0] == pd.Timestamp(sp500.timestamps[1])
    assert rm.provenance["kind"] == "assets" and rm.provenance["columns"] == ["AAPL", "AMD"]
    assert rm.provenance["periods_per_year"] == 252.0


def test_assets_gap_policy():
    close = np.ones((2, 10)) * np.arange(1, 11)
    close[1, :3] = np.nan  # listed late: leading rows dropped
    rm = from_assets(_market(close.copy()))
    assert len(rm.returns) == 6 and rm.provenance["rows_dropped_leading"] == 4
    close[0, 6] = np.nan  # an interior gap
    with pytest.raises(DataError, match=r"asset 'A0' has no valid price at 2020-01-07.*gaps='drop'"):
        from_assets(_market(close))
    rm = from_assets(_market(close), gaps="drop")
    assert rm.provenance["rows_dropped_gaps"] == 1 and len(rm.returns) == 5
    # the return across the gap runs from the last common price
    assert rm.returns.iloc[2, 0] == pytest.approx(8 / 6 - 1)


def test_assets_errors():
    close = np.ones((2, 5))
    close[1] = np.nan
    with pytest.raises(DataError, match="A1 have no finite value"):
        from_assets(_market(close))
    with pytest.raises(DataError, match=r"only 1 aligned row\(s\).*need at least 2"):
        from_assets(_market(np.ones((1, 2))))
    with pytest.raises(TypeError, match="expects MarketData"):
        from_assets("sp500")


def _oos() -> pd.DataFrame:
    idx = pd.date_range("2021-01-01", periods=8, freq="D", name="timestamp")
    return pd.DataFrame({"sma_cross/AAPL": [np.nan, 0.01, 0.02, np.nan, 0.0, -0.01, 0.01, 0.0],
                         "rsi/AMD": [np.nan, np.nan, 0.03, 0.01, np.nan, 0.02, 0.0, 0.01]},
                        index=idx)


def test_from_strategies_gap_policy(tmp_path):
    rm = from_strategies(_oos())
    assert rm.returns.index[0] == pd.Timestamp("2021-01-03")  # both columns started
    assert not rm.returns.isna().any().any()
    assert rm.provenance["cells_filled"] == 2 and rm.provenance["kind"] == "strategies"
    assert rm.returns.loc["2021-01-04", "sma_cross/AAPL"] == 0.0
    # from a tournament's output directory, and auto-detected
    _oos().to_parquet(tmp_path / "oos_returns.parquet")
    for src in (tmp_path, tmp_path / "oos_returns.parquet"):
        got = returns_matrix(src)
        assert got.provenance["kind"] == "strategies"
        pd.testing.assert_frame_equal(got.returns, rm.returns)


def test_from_strategies_errors(tmp_path):
    bad = _oos()
    bad["x/Y"] = np.nan
    with pytest.raises(DataError, match="x/Y have no finite value"):
        from_strategies(bad)
    with pytest.raises(DataError, match="only 1 aligned row"):
        from_strategies(_oos().iloc[:3])
    with pytest.raises(DataError, match=r"unknown column 'rsi/AMDX' \(did you mean 'rsi/AMD'"):
        from_strategies(_oos(), ["rsi/AMDX"])
    with pytest.raises(DataError, match="no such file"):
        from_strategies(tmp_path / "nope.parquet")


def test_roundtrip_keeps_provenance(tmp_path, small):
    rm = returns_matrix(small)
    path = rm.to_parquet(tmp_path / "m.parquet")
    back = read_returns(path)
    assert isinstance(back, ReturnsMatrix)
    assert back.provenance == rm.provenance
    pd.testing.assert_frame_equal(back.returns, rm.returns, check_freq=False)
