#!/usr/bin/env python
"""Seconds to generate a full compliance report over a large audit log (target: 1M in < 60 s).

A fresh SQLite deployment gets N synthetic ``api.call`` entries (20 principals, 5 models, about
8% denied with three reasons, one principal probing in bursts), appended through the real
``governance.audit.log.append`` in large batches, so every entry has its leaf hash and Merkle
nodes, and a signed checkpoint covers the log. Then ``reports.generate`` runs as the API and
CLI run it: on a snapshot session, verifying the whole live log, aggregating usage in SQL,
drawing the three charts and writing report.json, report.html, report.pdf and the signed
manifest. Only generation is timed; the baseline is the 60 s target.

    python bench/report.py          # 100k entries
    python bench/report.py --full   # 1M entries
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit

from governance.audit import log as audit_log
from governance.audit.checkpoints import Checkpointer
from governance.audit.repository import snapshot_session
from governance.bootstrap import create_keys, seed
from governance.config import Settings
from governance.db import make_engine, make_sessionmaker
from governance.db.base import utcnow
from governance.db.migrate import upgrade
from governance.kit.context import cli_context
from governance.kit.events import Actor, AuditEvent
from governance.reports.manifest import verify_report_dir
from governance.reports.service import reports

BATCH = 20_000
REASONS = ("no matching allow rule", "explicit deny", "unknown, revoked or expired API key")


def synthetic(i: int) -> AuditEvent:
    """The i-th synthetic call: deterministic, varied enough to make real groups."""
    model = f"model-{i % 5}"
    if i % 997 < 15:  # a prober hammering a model it may not use
        return AuditEvent(
            event_type="api.call",
            action="POST /v1/models/{name}/predict",
            actor=Actor(principal_id=99, name="prober", roles=(), auth_method="api_key"),
            resource={
                "object": f"model:{model}",
                "action": "predict",
                "path": f"/v1/models/{model}/predict",
            },
            decision="deny",
            reason=REASONS[0],
            outcome=403,
        )
    name = f"client-{i % 20}"
    denied = i % 13 == 0
    if denied:
        return AuditEvent(
            event_type="api.call",
            action="POST /v1/models/{name}/predict",
            actor=Actor(principal_id=i % 20, name=name, roles=("client",)),
            resource={
                "object": f"model:{model}",
                "action": "predict",
                "path": f"/v1/models/{model}/predict",
            },
            decision="deny",
            reason=REASONS[i % 3],
            outcome=403,
        )
    return AuditEvent(
        event_type="api.call",
        action="predict",
        actor=Actor(principal_id=i % 20, name=name, roles=("client",)),
        resource={"model": model, "version": "1"},
        decision="allow",
        reason="allowed by policy",
        model_version="1",
        outcome=200,
        request_id=f"{i:032x}",
        input_digest=f"{i:064x}",
        output_digest=f"{i + 1:064x}",
        details={"records": 1},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="1M entries instead of 100k")
    parser.add_argument("--entries", type=int, default=None)
    args = parser.parse_args()
    n = args.entries or (1_000_000 if args.full else 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(
            environment="test",
            data_dir=root / "data",
            database_url=f"sqlite:///{root}/w.db",
            reports_dir=root / "reports",
            models_dir=root / "models",
            device="cpu",
        )
        create_keys(settings)
        engine = make_engine(settings.resolved_database_url)
        upgrade(engine)
        seed(engine, settings)
        sessions = make_sessionmaker(engine)
        started = utcnow()
        t0 = time.perf_counter()
        for offset in range(0, n, BATCH):
            with sessions.begin() as session:
                audit_log.append(
                    session, [synthetic(i) for i in range(offset, min(n, offset + BATCH))]
                )
        checkpointer = Checkpointer.from_settings(settings)
        key = checkpointer.key
        with sessions.begin() as session:
            checkpointer.checkpoint(session, force=True)
        fill = time.perf_counter() - t0
        print(f"appended {n} entries in {fill:.1f} s", file=sys.stderr)
        engine.dispose()

        t0 = time.perf_counter()
        with snapshot_session(settings.resolved_database_url) as snapshot:
            generated = reports.generate(
                snapshot,
                settings,
                cli_context("bench"),
                signing_key=key,
                start=started - timedelta(minutes=1),
                end=utcnow() + timedelta(minutes=1),
            )
        seconds = time.perf_counter() - t0
        report = generated.report
        assert report.meta.audit_log.verification.verified, report.meta.audit_log.verification
        assert report.usage.requests == n, (report.usage.requests, n)
        from governance.audit.signing import public_vkey

        verify_report_dir(generated.folder, public_vkey(settings.log_origin, key))
        print(
            f"report {report.meta.id}: {report.usage.requests} calls, {report.usage.denied} "
            f"denied, {len(report.usage.denial_bursts)} bursts, log verified in "
            f"{report.meta.audit_log.verification.seconds:.1f} s",
            file=sys.stderr,
        )
        verification = report.meta.audit_log.verification
        emit(
            "report",
            f"seconds to generate over {n} entries",
            seconds,
            60.0,
            entries=n,
            verify_seconds=verification.seconds,
            verify_entries_per_s=round(verification.entries_checked / verification.seconds)
            if verification.seconds
            else None,
        )


if __name__ == "__main__":
    main()
