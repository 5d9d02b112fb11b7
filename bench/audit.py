"""Benchmark: the audit log's append, verification and proof speeds, on SQLite (WAL, FULL sync).

1. Durable appends/s: one entry per transaction (each commit waits for its fsync) against group
   commit (``--clients`` threads submitting through the real :class:`AuditWriter`, which writes
   everything queued in one transaction). Both run for ``--seconds`` on fresh databases; every
   append is acknowledged only after its commit returned. This ratio is the closing JSON line.
2. Verification speed: ``verify_log`` over a log of ``--entries`` realistic entries (100k by
   default, 1M with ``--full``), with a signed checkpoint every 1000, in entries/s.
3. Proof generation at that size: inclusion proofs of random entries and a consistency proof,
   each built from O(log n) stored nodes through the service, in ms (median).

The governed/bare predict ratio with the audit on is measured by ``bench/predict.py``.

    python bench/audit.py          # quick: 100k entries, under a minute
    python bench/audit.py --full   # 1M entries (a few minutes, mostly building the log)
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from sqlalchemy import Engine  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from bench._common import emit  # noqa: E402
from governance.audit import log as audit_log  # noqa: E402
from governance.audit.checkpoints import Checkpointer  # noqa: E402
from governance.audit.memory import SignerMemory  # noqa: E402
from governance.audit.note import vkey_for  # noqa: E402
from governance.audit.repository import snapshot_session  # noqa: E402
from governance.audit.service import audit  # noqa: E402
from governance.audit.signing import public_vkey  # noqa: E402
from governance.audit.verify import verify_log  # noqa: E402
from governance.audit.writer import AuditWriter  # noqa: E402
from governance.db import make_engine, make_sessionmaker  # noqa: E402
from governance.db.migrate import upgrade  # noqa: E402
from governance.kit.events import Actor, AuditEvent, Source  # noqa: E402

ORIGIN = "bench.warden/audit"


def event(i: int) -> AuditEvent:
    """A predict-call entry of realistic size (about 700 bytes canonical)."""
    return AuditEvent(
        event_type="api.call",
        action="POST /v1/models/{name}/predict",
        actor=Actor(principal_id=7, name=f"client-{i % 16}", roles=("client",)),
        source=Source(ip="10.1.2.3", user_agent="python-httpx/0.27"),
        resource={"model": "toy", "version": "1", "object": "model:toy", "action": "predict"},
        decision="allow",
        reason="p, group:default-models, predict",
        policy_version=3,
        model_version="1",
        outcome=200,
        request_id=f"{i:032x}",
        input_digest="a" * 64,
        output_digest="b" * 64,
        data_key_id="dek-42",
    )


def fresh(root: Path, name: str) -> tuple[Engine, sessionmaker[Session], str]:
    url = f"sqlite:///{root / name}"
    engine = make_engine(url)
    upgrade(engine)
    return engine, make_sessionmaker(engine), url


def one_at_a_time(sessions: sessionmaker[Session], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        with sessions.begin() as session:
            audit_log.append(session, [event(done)])
        done += 1
    return done / (time.perf_counter() - start)


def group_commit(engine: Engine, seconds: float, clients: int) -> tuple[float, float]:
    writer = AuditWriter(engine, max_batch=512, max_wait_ms=2.0)
    writer.start()
    counts = [0] * clients
    failures: list[BaseException] = []
    stop = threading.Event()

    def client(n: int) -> None:
        try:
            while not stop.is_set():
                writer.append_sync([event(n * 1_000_000 + counts[n])])
                counts[n] += 1
        except BaseException as exc:  # a refused append is a failed benchmark, not a rate
            failures.append(exc)
            stop.set()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    writer.close()
    if failures:
        raise RuntimeError(f"{len(failures)} client(s) had an append refused") from failures[0]
    return sum(counts) / elapsed, writer.items / max(writer.batches, 1)


def build_log(sessions: sessionmaker[Session], entries: int, checkpointer: Checkpointer) -> float:
    start, done, batch = time.perf_counter(), 0, 1000
    while done < entries:
        step = min(batch, entries - done)
        with sessions.begin() as session:
            audit_log.append(session, [event(done + k) for k in range(step)])
        done += step
        with sessions.begin() as session:
            checkpointer.maybe_checkpoint(session, done)
    with sessions.begin() as session:
        checkpointer.checkpoint(session, force=True)
    return time.perf_counter() - start


def proof_times(sessions: sessionmaker[Session], entries: int, samples: int) -> tuple[float, float]:
    rng = random.Random(7)
    inclusion, consistency = [], []
    with sessions() as session:
        latest = audit.latest_checkpoint(session).tree_size
        sizes = [c.tree_size for c in audit.checkpoints(session, limit=1000)]
        for _ in range(samples):
            seq = rng.randrange(entries)
            start = time.perf_counter()
            found = audit.entry(session, seq)
            inclusion.append(time.perf_counter() - start)
            assert found.proof is not None
            first = rng.choice(sizes)
            start = time.perf_counter()
            audit.consistency(session, first=first, second=latest)
            consistency.append(time.perf_counter() - start)
    return statistics.median(inclusion) * 1000, statistics.median(consistency) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="1M entries instead of 100k")
    parser.add_argument("--entries", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=3.0, help="per append mode")
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    entries = args.entries or (1_000_000 if args.full else 100_000)

    with tempfile.TemporaryDirectory(prefix="warden-bench-audit-") as tmp:
        root = Path(tmp)
        single = one_at_a_time(fresh(root, "single.db")[1], args.seconds)
        grouped, per_batch = group_commit(fresh(root, "group.db")[0], args.seconds, args.clients)
        print(f"durable appends/s, one at a time     {single:10.0f}")
        print(
            f"durable appends/s, group commit      {grouped:10.0f}  "
            f"({args.clients} clients, {per_batch:.1f} entries/transaction)"
        )

        key = Ed25519PrivateKey.generate()
        memory = SignerMemory(root / "signer.checkpoint", vkey_for(ORIGIN, key.public_key()))
        checkpointer = Checkpointer(
            ORIGIN, key, memory=memory, every_entries=1000, every_seconds=1e9
        )
        _, sessions, url = fresh(root, "big.db")
        built = build_log(sessions, entries, checkpointer)
        print(f"built a log of {entries} entries in  {built:8.1f} s")
        with snapshot_session(url) as session:
            report = verify_log(session, public_vkey(ORIGIN, key))
        print(
            f"verification                         {report.entries_per_second:10.0f} entries/s "
            f"({report.entries_checked} entries, {report.checkpoints_checked} checkpoints, "
            f"{report.seconds:.2f} s)"
        )
        inclusion_ms, consistency_ms = proof_times(sessions, entries, 200)
        print(f"inclusion proof at {entries} entries    {inclusion_ms:8.3f} ms (median of 200)")
        print(f"consistency proof at {entries} entries  {consistency_ms:8.3f} ms (median of 200)")

    emit(
        "audit",
        "durable appends/s: group commit / one at a time (SQLite, FULL sync)",
        grouped,
        single,
        clients=args.clients,
        entries_per_transaction=round(per_batch, 1),
        verify_entries_per_s=round(report.entries_per_second),
        verify_entries=report.entries_checked,
        inclusion_proof_ms=round(inclusion_ms, 3),
        consistency_proof_ms=round(consistency_ms, 3),
    )


if __name__ == "__main__":
    main()
