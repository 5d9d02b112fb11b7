#!/usr/bin/env python
"""Imported ONNX models: predictions/s through Warden against ONNX Runtime called directly.

A scikit-learn HistGradientBoostingClassifier is trained on Adult, converted with skl2onnx and
imported (``POST /v1/models/import``'s service), audited through a gate override and promoted.
Three ways to run the same batches of ``--rows`` test records, in one run:

- ``direct``: ``InferenceSession.run`` on the batches already encoded, one caller, the session
  with the thread count Warden's gets (the baseline);
- ``core``: Warden's serving core in-process, as the predict route drives it: validation and
  encoding of the JSON records, the micro-batcher (``--clients`` concurrent callers), the graph,
  the labelled decision;
- ``governed``: ``warden serve`` over HTTP, everything on (key, policy, validation, encrypted
  record and audit entry durable before the answer), ``--clients`` keep-alive clients.

The closing JSON line: ours = governed predictions/s, baseline = direct, with the core's rate
and ratio as ``core`` and ``core_ratio``.

    python bench/onnx.py           # 3 s per side, under a minute on a quiet machine
    python bench/onnx.py --full    # longer runs
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, emit, load, start_server

# This file is named onnx.py: off the path, or `import onnx` would find it, not the package.
sys.path[:] = [p for p in sys.path if p not in (str(REPO / "bench"), "")]
sys.path.insert(0, str(REPO))

from governance.cli.server_process import free_port, serve_command  # noqa: E402


def _deploy(root: Path, onnx: bytes, schema: bytes, threads: int) -> tuple[dict[str, str], str]:
    """Init Warden in ``root``, import and serve the graph, return (env, client token)."""
    import os

    from governance.bootstrap import initialize
    from governance.config import Settings
    from governance.db import make_engine, make_sessionmaker
    from governance.fairness.gate import overrides
    from governance.identity.service import identity
    from governance.kit.context import cli_context
    from governance.policy.rules import role_subject
    from governance.policy.service import default_policy, policy
    from governance.registry.import_schema import parse_import_schema
    from governance.registry.importing import import_onnx, import_workdir
    from governance.registry.service import registry

    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(
        WARDEN_DATA_DIR=str(root / "var"),
        WARDEN_DEVICE="cpu",
        WARDEN_REPORTS_DIR=str(root / "reports"),
        WARDEN_ONNX_THREADS=str(threads),
    )
    os.environ.pop("WARDEN_DATABASE_URL", None)
    os.environ.update({k: v for k, v in env.items() if k.startswith("WARDEN_")})
    settings = Settings()
    initialize(settings)
    graph = root / "model.onnx"
    graph.write_bytes(onnx)
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    ctx = cli_context("bench")
    vocab, _ = default_policy(settings.policies_dir)
    with sessions.begin() as s:
        import_onnx(
            s,
            ctx,
            name="imported",
            version="1",
            graph=graph,
            schema=parse_import_schema(schema),
            models_dir=settings.resolved_models_dir,
            workdir=import_workdir(settings.resolved_models_dir),
            max_graph_bytes=settings.model_import_max_bytes,
        )
    with sessions.begin() as s:
        overrides.override(
            s,
            cli_context("bench-officer"),
            model="imported",
            version="1",
            justification="benchmark of the serving path only, approved to measure throughput",
        )
    with sessions.begin() as s:
        registry.promote(s, ctx, name="imported", version="1")
        identity.create_principal(s, ctx, name="bench-client", kind="service")
        policy.apply(
            s,
            ctx,
            add=[
                ["g", "bench-client", role_subject("client")],
                ["g2", "model:imported", "group:default-models"],
            ],
            remove=[],
            reason="benchmark setup",
            vocab=vocab,
        )
        _, token = identity.issue_key(s, ctx, principal="bench-client")
    engine.dispose()
    return env, token


def _direct(onnx: bytes, batches: list[Any], threads: int, duration: float) -> float:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    rows = 0
    began = time.perf_counter()
    while time.perf_counter() - began < duration:
        for x in batches:
            session.run(["probabilities"], {"X": x})
            rows += len(x)
    return rows / (time.perf_counter() - began)


def _core(
    onnx: bytes, schema: bytes, records: list[list[dict[str, Any]]], threads: int, **run: Any
) -> float:
    import torch

    from governance.registry.import_schema import parse_import_schema
    from inference.batcher import MicroBatcher, default_execution
    from inference.manifest import parse_manifest
    from inference.onnx_model import OnnxModel

    manifest = parse_manifest(parse_import_schema(schema).manifest_doc("imported", "1"))
    cpu = torch.device("cpu")
    model = OnnxModel(manifest, onnx, cpu, threads=threads)
    batcher = MicroBatcher.for_model(model, execution=default_execution(cpu), loop_budget_ms=5.0)

    async def main(clients: int, duration: float) -> float:
        batcher.start()
        rows = 0
        stop = time.perf_counter() + duration

        async def client(i: int) -> None:
            nonlocal rows
            while time.perf_counter() < stop:
                batch = records[i % len(records)]
                x = model.encode(batch)
                model.decide(batch, x, await batcher.submit(x))
                rows += len(batch)
                i += 1

        began = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - began
        await batcher.aclose()
        return rows / elapsed

    return asyncio.run(main(**run))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--full", action="store_true", help="longer runs")
    parser.add_argument("--rows", type=int, default=16, help="records per request")
    parser.add_argument("--clients", type=int, default=16, help="concurrent callers")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = parser.parse_args()
    duration = 20.0 if args.full else 3.0

    from governance.datasets.tabular import load_adult
    from tests.registry.onnx_models import gradient_boosting, schema_doc, schema_text

    began = time.perf_counter()
    adult = load_adult()
    trained = gradient_boosting(adult)
    schema = schema_text(schema_doc(adult, output="probabilities", kind="probabilities")).encode()
    n = len(adult.test.features) // args.rows * args.rows
    frame = adult.test.features.iloc[:n]
    records = [
        frame.iloc[i : i + args.rows].to_dict(orient="records") for i in range(0, n, args.rows)
    ]
    batches = [trained.x_test[i : i + args.rows] for i in range(0, n, args.rows)]
    print(f"model trained and converted in {time.perf_counter() - began:.0f} s")

    direct = _direct(trained.onnx, batches, args.threads, duration)
    print(f"direct    {direct:10.0f} predictions/s")
    core = _core(
        trained.onnx, schema, records, args.threads, clients=args.clients, duration=duration
    )
    print(f"core      {core:10.0f} predictions/s ({core / direct:.3f} of direct)")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env, token = _deploy(root, trained.onnx, schema, args.threads)
        port = free_port()
        server = start_server(serve_command(port), env, port, root / "server.log")
        try:
            result = load(
                f"{server.url}/v1/models/imported/predict",
                {"Authorization": f"Bearer {token}"},
                {"records": records[0]},
                clients=args.clients,
                duration=duration,
                server_pid=server.pid,
            )
        finally:
            server.stop()
    governed = result.rps * args.rows
    print(
        f"governed  {governed:10.0f} predictions/s ({governed / direct:.3f} of direct), "
        f"p50 {result.p50_ms:.2f} ms, errors {result.errors}"
    )
    emit(
        "onnx",
        "predictions_per_s",
        governed,
        direct,
        core=round(core, 1),
        core_ratio=round(core / direct, 4),
        rows_per_request=args.rows,
        clients=args.clients,
        errors=result.errors,
    )


if __name__ == "__main__":
    main()
