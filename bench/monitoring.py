"""Benchmark: live monitoring over stored outcomes against the same audit on in-memory arrays.

``monitor`` reads a window's outcomes from the database (grouped and counted there), rebuilds
the columns, runs the fast-path audit with a bootstrap and stores the result. The baseline is
``audit_predictions`` on the very arrays that were inserted, fast path and same bootstrap, in
the same process: the ratio (ours / baseline) is what reading from the database adds. Both
results are checked to be identical before any time is reported.

    python bench/monitoring.py            # 200k outcomes on SQLite (about 15 s)
    python bench/monitoring.py --full     # 1M outcomes
    python bench/monitoring.py --postgres postgresql://postgres:PASSWORD@127.0.0.1:5432/postgres

The last line printed is one JSON object: seconds per monitor run and per in-memory audit (best
of ``--repeats``) on SQLite, and with ``--postgres`` the same under ``postgres_``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, postgres_database

from governance.bootstrap import initialize
from governance.config import Settings
from governance.db import make_engine, make_sessionmaker
from governance.fairness.metrics import audit_predictions
from governance.fairness.monitoring import monitor
from governance.kit.context import cli_context
from tests.fairness.outcomes import MODEL, START, insert_raw, synthetic


def _deployment(root: Path, database_url: str) -> Settings:
    """A migrated, seeded Warden database (SQLite under ``root`` unless a URL is given)."""
    settings = Settings(
        data_dir=root / "var", database_url=database_url, reports_dir=root / "reports"
    )
    initialize(settings)
    return settings


def _insert(
    settings: Settings, y_true: np.ndarray, y_pred: np.ndarray, sensitive: pd.DataFrame
) -> float:
    """Insert the outcomes, spread over one day; seconds."""
    engine = make_engine(settings.resolved_database_url)
    started = time.perf_counter()
    try:
        with engine.begin() as connection:
            insert_raw(connection, y_true, y_pred, sensitive)
    finally:
        engine.dispose()
    return time.perf_counter() - started


def _time_monitor(
    settings: Settings, *, bootstrap: int, repeats: int
) -> tuple[list[float], dict[str, Any]]:
    """Each run of ``monitor`` over the whole day, in its own transaction, and its result."""
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    times, result = [], {}
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            with sessions.begin() as session:
                row = monitor(
                    session,
                    cli_context("bench"),
                    model=MODEL,
                    since=START,
                    until=START + timedelta(days=1),
                    bootstrap=bootstrap,
                    policies_dir=settings.policies_dir,
                )
                result = json.loads(row.result)
            times.append(time.perf_counter() - started)
    finally:
        engine.dispose()
    return times, result


def _time_in_memory(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    sensitive: pd.DataFrame,
    *,
    bootstrap: int,
    repeats: int,
) -> tuple[list[float], dict[str, Any]]:
    times, result = [], {}
    for _ in range(repeats):
        started = time.perf_counter()
        audit = audit_predictions(
            y_true=y_true,
            y_pred=y_pred,
            # monitor decodes the attributes in sorted order.
            sensitive=sensitive[["race", "sex"]],
            bootstrap=bootstrap,
            use_fast_path=True,
        )
        times.append(time.perf_counter() - started)
        result = json.loads(json.dumps(audit.to_dict()))  # as stored: JSON
    return times, result


def _runs(times: list[float]) -> str:
    return ", ".join(f"{t:.3f}" for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="1M outcomes instead of 200k")
    parser.add_argument("--rows", type=int, default=None, help="override the outcome count")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (best is kept)")
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        help="also monitor a fresh PostgreSQL database made with this admin URL (dropped after)",
    )
    args = parser.parse_args()
    n_rows = args.rows or (1_000_000 if args.full else 200_000)
    repeats = max(1, args.repeats)

    y_true, y_pred, sensitive = synthetic(n_rows, seed=11)
    print(
        f"monitoring: {n_rows:,} outcomes, features sex x race, bootstrap {args.bootstrap}",
        flush=True,
    )
    memory_times, expected = _time_in_memory(
        y_true, y_pred, sensitive, bootstrap=args.bootstrap, repeats=repeats
    )
    baseline = min(memory_times)
    print(f"in-memory audit:    {baseline:8.3f} s  (runs: {_runs(memory_times)})", flush=True)

    backends = ["sqlite"] + (["postgres"] if args.postgres else [])
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        for backend in backends:
            url = (
                stack.enter_context(postgres_database(args.postgres))
                if backend == "postgres"
                else ""
            )
            settings = _deployment(Path(tmp) / backend, url)
            inserted = _insert(settings, y_true, y_pred, sensitive)
            times, result = _time_monitor(settings, bootstrap=args.bootstrap, repeats=repeats)
            if result != expected:
                raise SystemExit(f"monitor on {backend} disagrees with the in-memory audit")
            best[backend] = min(times)
            print(
                f"monitor ({backend + '):':<10} {best[backend]:8.3f} s  (runs: {_runs(times)}; "
                f"insert {inserted:.1f} s)",
                flush=True,
            )
    print("results: identical")

    extra: dict[str, Any] = {"rows": n_rows, "bootstrap": args.bootstrap}
    if "postgres" in best:
        extra.update(
            postgres_ours=round(best["postgres"], 6),
            postgres_ratio=round(best["postgres"] / baseline, 4),
        )
    emit(
        "monitoring",
        "seconds per monitor run (ours) vs in-memory audit",
        best["sqlite"],
        baseline,
        **extra,
    )


if __name__ == "__main__":
    main()
