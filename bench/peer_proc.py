"""One peer run as a whole process, for bench/cli_sweep.py (run with the bench venv's python).

``vectorbt``: vectorbt's idiom on the sma_cross grid (``peers.vectorbt_total_returns``: MA.run,
``ma_above`` entries, ``from_signals``; chunks of 100 combos with ``gc.collect()`` on more than
10,000 bars), over the whole 994-combo grid or one combo (fast 10, slow 50).
``backtesting``: backtesting.py on one warm-up combo and then ``--sample`` combos of the grid,
each timed (CPU seconds), so the caller can scale its per-combo time to the grid.

The data is the same ``synthetic:gbm`` series the quantfleet command loads
(``series.gbm``). Prints one JSON line: what ran and the in-process CPU seconds of the grid
part; ``--out FILE.npy`` saves the total returns (the caller's correctness check).
"""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar (before tqdm import)

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import peers  # noqa: E402
import series  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tool", choices=("vectorbt", "backtesting"))
    ap.add_argument("--bars", type=int, default=100_000)
    ap.add_argument("--grid", choices=("full", "one"), default="full")
    ap.add_argument("--fee", type=float, default=0.0, help="fee rate (0.001 = 10 bps)")
    ap.add_argument("--exact-fees", action="store_true",
                    help="vectorbt: the per-bar fee array matching quantfleet's convention")
    ap.add_argument("--sample", type=int, default=2, help="backtesting: combos timed")
    ap.add_argument("--out", help="save the total returns here (.npy)")
    args = ap.parse_args()
    s = series.gbm(args.bars)
    grid = series.sma_grid() if args.grid == "full" else np.array([[10.0, 50.0]])
    if args.tool == "vectorbt":
        chunk = 100 if args.bars > 10_000 else None
        t = time.process_time()
        res = peers.vectorbt_total_returns(s.frame["Close"], grid, args.fee, chunk=chunk,
                                           exact_fees=args.exact_fees)
        doc = {"tool": "vectorbt", "combos": int(len(grid)), "bars": s.market.n_bars,
               "grid_cpu_s": time.process_time() - t, "chunk": chunk}
        if args.out:
            np.save(args.out, np.column_stack((grid, res)))
    else:
        full = series.sma_grid()
        idx = np.linspace(0, len(full) - 1, args.sample + 2)[1:-1].round().astype(int)
        t = time.process_time()
        peers.backtesting_total_returns(s.frame, grid[:1] if args.grid == "one" else full[:1],
                                        args.fee)
        warm = time.process_time() - t
        times = []
        for i in idx:
            t = time.process_time()
            peers.backtesting_total_returns(s.frame, full[i:i + 1], args.fee)
            times.append(time.process_time() - t)
        doc = {"tool": "backtesting", "bars": s.market.n_bars, "warmup_combo_cpu_s": warm,
               "sample": [[float(v) for v in full[i]] for i in idx], "sample_cpu_s": times,
               "per_combo_cpu_s": float(np.median(times))}
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
