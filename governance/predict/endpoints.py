"""``POST /v1/models/{name}/predict``: the hot path, an ordinary FastAPI route.

Authorization runs first (in the guard), so a caller without the right to predict on a model
gets 403 whether or not that model exists: callers cannot probe for models they may not use.
An allowed caller asking for a model that is not serving gets 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from governance.api.deps import Authorize, Caller
from governance.kit.problems import problem_schema, responses
from governance.predict import pipeline
from governance.predict.model_schema import describe
from governance.predict.pipeline import PREDICTOR, ModelNotServing, Predictor
from governance.predict.schemas import ModelSchema, PredictResponse
from inference.errors import ModelNotLoadedError

router = APIRouter(prefix="/v1/models", tags=["predict"])

CanPredict = Annotated[Caller, Depends(Authorize("model:{name}", "predict"))]
PredictorDep = Annotated[Predictor, Depends(PREDICTOR)]

# The body is read by the pipeline after the guard (FastAPI reads a declared body before any
# dependency runs), so the route documents it here (governance/api/openapi.py adds the schema).
_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
        },
    }
}


@router.post(
    "/{name}/predict",
    response_model=PredictResponse,
    responses={**responses(404, 413, 422, 503), 400: problem_schema()},
    openapi_extra=_REQUEST_BODY,
)
async def predict(
    name: str, request: Request, caller: CanPredict, predictor: PredictorDep
) -> Response:
    """Predict for one record or a batch; the call is audited and its payloads stored encrypted."""
    return await pipeline.run(predictor, request, caller, name)


# The predict permission, not the registry's read: a client learns how to call what it may
# call, and nothing else of the model (tests/predict/test_model_schema.py).
@router.get("/{name}/schema", operation_id="get_model_schema", responses=responses(404))
def get_model_schema(name: str, caller: CanPredict, predictor: PredictorDep) -> ModelSchema:
    """What the serving version takes: its fields as JSON Schema, its labels, an example."""
    try:
        served = predictor.host.get(name)
    except ModelNotLoadedError:
        raise ModelNotServing(f"model {name!r} is not serving") from None
    return describe(served.model.manifest)
