"""Benchmark: a fairness audit through the bincount fast path against Fairlearn's MetricFrame.

Both engines audit the same rows (two sensitive features, so three audits: each feature and
their intersection) with no bootstrap, in the same process, and their results are checked to
be identical before any time is reported.

    python bench/fairness.py            # 1M rows (about 45 s, nearly all of it MetricFrame)
    python bench/fairness.py --full     # 5M rows

The last line printed is one JSON object: seconds per 1M-row audit for each engine and the
speed-up (baseline / ours).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _data(n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    sex = rng.choice(np.array(["Female", "Male"], dtype=object), n_rows, p=[0.45, 0.55])
    race = rng.choice(
        np.array(["Asian", "Black", "Hispanic", "Other", "White"], dtype=object),
        n_rows,
        p=[0.06, 0.13, 0.18, 0.03, 0.60],
    )
    y_true = (rng.random(n_rows) < 0.3).astype(np.int64)
    y_pred = (rng.random(n_rows) < np.where(sex == "Male", 0.35, 0.25) + 0.3 * y_true).astype(
        np.int64
    )
    return y_true, y_pred, pd.DataFrame({"sex": sex, "race": race})


def _time_audit(
    y_true: np.ndarray, y_pred: np.ndarray, sensitive: pd.DataFrame, *, fast: bool
) -> tuple[float, dict[str, Any]]:
    from governance.fairness.metrics import audit_predictions

    start = time.perf_counter()
    result = audit_predictions(
        y_true=y_true, y_pred=y_pred, sensitive=sensitive, bootstrap=0, use_fast_path=fast
    )
    return time.perf_counter() - start, result.to_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="5M rows instead of 1M")
    parser.add_argument("--rows", type=int, default=None, help="override the row count")
    parser.add_argument("--repeats", type=int, default=3, help="fast-path runs (best is kept)")
    args = parser.parse_args()
    n_rows = args.rows or (5_000_000 if args.full else 1_000_000)
    millions = n_rows / 1_000_000

    y_true, y_pred, sensitive = _data(n_rows, seed=0)
    print(f"fairness audit: {n_rows:,} rows, features sex x race, no bootstrap", flush=True)

    fast_times = []
    fast_result: dict[str, Any] = {}
    for _ in range(max(1, args.repeats)):
        seconds, fast_result = _time_audit(y_true, y_pred, sensitive, fast=True)
        fast_times.append(seconds)
    ours = min(fast_times)
    print(f"fast path:   {ours:8.3f} s  (runs: {', '.join(f'{t:.3f}' for t in fast_times)})")

    baseline, slow_result = _time_audit(y_true, y_pred, sensitive, fast=False)
    print(f"MetricFrame: {baseline:8.3f} s  (one run)")

    fast_result.pop("engine")
    slow_result.pop("engine")
    if fast_result != slow_result:
        raise SystemExit("the two engines disagree: no timing reported")
    print("results: identical")

    ours_per_m = ours / millions
    baseline_per_m = baseline / millions
    print(
        json.dumps(
            {
                "bench": "fairness",
                "metric": "seconds per 1M-row audit",
                "ours": round(ours_per_m, 4),
                "baseline": round(baseline_per_m, 4),
                "ratio": round(baseline_per_m / ours_per_m, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
