"""``POST /v1/models/{name}/predict``: the hot path.

Authorization runs first (in the guard), so a caller without the right to predict on a model
gets 403 whether or not that model exists: callers cannot probe for models they may not use.
An allowed caller asking for a model that is not serving gets 404.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request, Response

from governance.api.deps import Authorize, Caller, runtime_of
from governance.api.lean_route import LeanRoute
from governance.api.problems import responses
from governance.predict.schemas import PredictRequest, PredictResponse
from governance.predict.service import predict as predict_service

# The hot path: FastAPI documents and guards the route; LeanRoute resolves its parameters
# without the generic dependency machinery (see governance/api/lean_route.py).
router = APIRouter(prefix="/v1/models", tags=["predict"], route_class=LeanRoute)

CanPredict = Annotated[Caller, Depends(Authorize("model:{name}", "predict"))]


@router.post(
    "/{name}/predict",
    response_model=PredictResponse,
    responses=responses(404, 413, 422, 503),
)
async def predict(
    name: str, body: PredictRequest, request: Request, caller: CanPredict
) -> Response:
    """Predict for one record or a batch; the call is audited and its payloads stored encrypted."""
    # The runtime straight from the app, not as a dependency: one less to resolve per call.
    result = await predict_service.run(runtime_of(request), caller, name, body, request.state)
    # Assembled by the service from its own values: serialised once, not validated again
    # (tests/predict check that it is a valid PredictResponse).
    return Response(orjson.dumps(result), media_type="application/json")
