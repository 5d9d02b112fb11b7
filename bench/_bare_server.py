"""The baseline for bench/predict: the same model behind a bare FastAPI endpoint.

Same inference core (manifest validation, encoding, micro-batcher, forward pass), same uvicorn
setup, no governance: no authentication, policy, encryption or audit.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import torch
import uvicorn
from fastapi import FastAPI

from inference.batcher import Execution, MicroBatcher, default_execution
from inference.model import LoadedModel
from inference.registry import AUTO_LOOP_BUDGET_MS


def build(artifact: str, execution: Execution | None = None) -> FastAPI:
    torch.set_num_threads(1)  # as the governed runtime does on CPU
    device = torch.device("cpu")
    model = LoadedModel.load(artifact, device)
    # The governed server's defaults, execution included (the loop, on the CPU).
    batcher = MicroBatcher(
        model.forward_probabilities,
        max_batch_rows=256,
        max_wait_ms=0.0,
        execution=execution or default_execution(device),
        loop_budget_ms=AUTO_LOOP_BUDGET_MS if execution is None else None,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        # As `warden serve` does: keep the startup heap out of full collections.
        gc.collect()
        gc.freeze()
        yield
        batcher.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(body: dict[str, Any]) -> dict[str, Any]:
        rows = [body["record"]]
        x = model.encode(rows)
        probs = await batcher.submit(x)
        preds = model.decide(rows, x, probs)
        return {
            "predictions": [{"label": p.label, "probabilities": p.probabilities} for p in preds]
        }

    return app


if __name__ == "__main__":
    uvicorn.run(
        build(sys.argv[1], cast(Execution, sys.argv[3]) if len(sys.argv) > 3 else None),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        log_level="warning",
        access_log=False,
    )
