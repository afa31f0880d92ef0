"""Result parity across a refactor: run the CLI commands a user types on the bundled data and
write a digest of every result table, so two checkouts can be compared table by table.

    python bench/parity.py --out digests.json                  # this checkout
    python bench/parity.py --src /path/to/other/src --out b.json
    python bench/parity.py --compare a.json b.json             # exit 1 on any difference

Each command runs as its own process (``python -m quantfleet.cli``) with ``PYTHONPATH`` set to
the checkout's ``src`` and a fresh working directory (the run store lands there). Wall-clock
fields are dropped; everything else must match bit for bit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOCK = {"wall_s", "cpu_s", "fit_s", "seconds", "run_id", "out", "baseline", "executor", "timing",
         "tournament_s"}
SKIP_TABLES = ("spans.parquet",)  # measured clocks, different on every run

COMMANDS: dict[str, list[str]] = {
    "backtest": ["backtest", "sp500", "--strategy", "sma_cross", "--param", "fast=10",
                 "--param", "slow=50", "--fee-bps", "5", "--json"],
    "sweep": ["sweep", "sp500", "--strategy", "sma_cross", "--grid", "fast=5:20:5",
              "--grid", "slow=30:60:10", "--fee-bps", "5", "--out", "{tmp}/sweep.parquet",
              "--json"],
    "tournament": ["tournament", "sp500_ohlcv", "--strategies", "sma_cross,rsi,bollinger,donchian",
                   "--train", "500", "--test", "250", "--max-combos", "8", "--fee-bps", "5",
                   "--executor", "serial", "--out", "{tmp}/tournament", "--json"],
    "tournament_sp500": ["tournament", "sp500", "--strategies", "sma_cross,ema_cross,rsi,bollinger",
                         "--assets", "AAPL,AMD,JPM,KO,XOM", "--train", "2Y", "--test", "1Y",
                         "--max-combos", "12", "--metric", "sortino", "--executor", "serial",
                         "--out", "{tmp}/tournament", "--json"],
    "evolve": ["evolve", "sp500", "--strategies", "sma_cross,ema_cross", "--population", "16",
               "--generations", "3", "--seed", "7", "--assets", "AAPL,AMD,BAC,JPM",
               "--executor", "serial", "--json"],
    "portfolio": ["portfolio", "sp500", "--profiles", "hrp,min_variance,equal_weight",
                  "--train", "252", "--test", "63", "--executor", "serial",
                  "--out", "{tmp}/portfolio", "--json"],
}


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in CLOCK}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _table_digest(path: Path) -> dict:
    import pandas as pd
    import pyarrow.parquet as pq

    df = pq.read_table(path).to_pandas()
    df = df[[c for c in df.columns if c not in CLOCK]]
    h = hashlib.sha256()
    h.update(json.dumps([list(map(str, df.columns)), list(map(str, df.dtypes))]).encode())
    h.update(pd.util.hash_pandas_object(df.reset_index(drop=True), index=False).values.tobytes())
    return {"rows": len(df), "columns": len(df.columns), "sha256": h.hexdigest()}


def run_all(src: Path, only: list[str] | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "QUANTFLEET_METRICS": "0",
           "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    out: dict = {}
    for name, argv in COMMANDS.items():
        if only and name not in only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            env["QUANTFLEET_STORE"] = f"{tmp}/lakehouse"
            env["QUANTFLEET_HOME"] = f"{tmp}/home"
            args = [a.replace("{tmp}", tmp) for a in argv]
            p = subprocess.run([sys.executable, "-m", "quantfleet.cli", *args], cwd=tmp,
                               env=env, capture_output=True, text=True)
            if p.returncode != 0:
                raise SystemExit(f"parity: {name} failed ({p.returncode}): "
                                 f"{p.stderr.strip().splitlines()[-1:]}")
            doc = _strip(json.loads(p.stdout))
            entry: dict = {"json": hashlib.sha256(json.dumps(doc, sort_keys=True).encode())
                           .hexdigest(), "doc": doc}
            for f in sorted(Path(tmp).rglob("*.parquet")):
                rel = f.relative_to(tmp)
                if rel.parts[0] in ("lakehouse", "home") or rel.name in SKIP_TABLES:
                    continue
                entry[str(rel)] = _table_digest(f)
            out[name] = entry
            print(f"parity: {name} ok", file=sys.stderr)
    return out


def compare(a: dict, b: dict) -> list[str]:
    diffs = []
    for name in sorted(set(a) | set(b)):
        ea, eb = a.get(name, {}), b.get(name, {})
        for k in sorted((set(ea) | set(eb)) - {"doc"}):
            if ea.get(k) != eb.get(k):
                diffs.append(f"{name}: {k}: {ea.get(k)} != {eb.get(k)}")
    return diffs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=ROOT / "src")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--compare", nargs=2, type=Path)
    a = ap.parse_args()
    if a.compare:
        diffs = compare(*(json.loads(p.read_text()) for p in a.compare))
        print("\n".join(diffs) or "parity: identical")
        raise SystemExit(1 if diffs else 0)
    res = run_all(a.src.resolve(), a.only)
    text = json.dumps(res, indent=1, sort_keys=True, default=str)
    if a.out:
        a.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
