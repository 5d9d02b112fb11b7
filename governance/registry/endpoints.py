"""Routes of the model registry."""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker
from starlette.convertors import StringConvertor, register_url_convertor

from governance.api.dependencies import ReloadDep, SettingsDep
from governance.api.deps import Authorize, Caller
from governance.config import Settings
from governance.kit.problems import problem_schema, responses
from governance.kit.transaction import SessionsDep, TransactionDep
from governance.privacy.claims import claim_for
from governance.registry.errors import InvalidArtifact
from governance.registry.import_schema import parse_import_schema
from governance.registry.importing import import_onnx, import_workdir
from governance.registry.models import ModelVersion
from governance.registry.schemas import (
    ArtifactUpload,
    DpClaimOut,
    ModelDetail,
    ModelVersionOut,
)
from governance.registry.service import registry
from governance.registry.upload import IMPORT_PATH, ImportUpload, receive_import
from inference.artifact import MANIFEST_FILE
from inference.manifest import FILE_RE, RESERVED_FILES

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelNameConvertor(StringConvertor):
    """A model name segment that is not ``import``: ``GET /v1/models/import`` is a 405 naming
    the import route's POST, not a lookup of a model called "import"."""

    regex = "(?!import$)[^/]+"


register_url_convertor("model_name", ModelNameConvertor())

CanListModels = Annotated[Caller, Depends(Authorize("api:models", "list"))]
CanReadModels = Annotated[Caller, Depends(Authorize("api:models", "read"))]
CanRegister = Annotated[Caller, Depends(Authorize("api:models", "register"))]
CanPromote = Annotated[Caller, Depends(Authorize("api:models", "promote"))]


def version_out(row: ModelVersion) -> ModelVersionOut:
    return ModelVersionOut.model_validate(row, from_attributes=True)


@router.get("", responses=responses())
def list_models(caller: CanListModels, session: TransactionDep) -> list[ModelVersionOut]:
    """List registered model versions and their stages."""
    return [version_out(r) for r in registry.list_versions(session)]


@router.get("/{name:model_name}", responses=responses(404))
def get_model(
    name: str, caller: CanReadModels, session: TransactionDep, version: str | None = None
) -> ModelDetail:
    """A model version with its manifest (the serving version when none is named)."""
    row = registry.get(session, name, version)
    manifest = json.loads(row.manifest)
    claim = claim_for(session, artifact_sha256=row.artifact_sha256, manifest=manifest)
    return ModelDetail(
        **version_out(row).model_dump(),
        manifest=manifest,
        dp_claim=DpClaimOut(**claim.to_dict()),
    )


def _register(
    sessions: sessionmaker[Session], models_dir: Path, caller: Caller, body: ArtifactUpload
) -> ModelVersionOut:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, content in body.files.items():
            # The manifest's own rule for file names: a plain name in the folder, never a path,
            # a dot file, the empty name (the folder itself) or one the filesystem refuses.
            if not FILE_RE.fullmatch(name) or name in RESERVED_FILES:
                # Never echoed: it is the caller's and may hold control characters.
                raise InvalidArtifact(
                    "files: each name must be a plain file name: a letter or digit, then up to "
                    "127 letters, digits, '.', '_' or '-'"
                )
            try:
                (root / name).write_bytes(base64.b64decode(content, validate=True))
            except (binascii.Error, ValueError):
                raise InvalidArtifact(f"file {name[:64]!r} is not valid base64") from None
        (root / MANIFEST_FILE).write_text(json.dumps(body.manifest))
        with sessions.begin() as session:
            row = registry.register(
                session,
                caller.ctx,
                source_dir=root,
                models_dir=models_dir,
                trained_by=body.manifest.get("training", {}).get("trained_by")
                if isinstance(body.manifest.get("training"), dict)
                else None,
            )
            return version_out(row)


@router.post("", status_code=201, responses=responses(409, 413, 422))
async def register_model(
    body: ArtifactUpload, sessions: SessionsDep, settings: SettingsDep, caller: CanRegister
) -> ModelVersionOut:
    """Register an artifact (manifest plus base64 files); hashes are verified first."""
    return await run_in_threadpool(_register, sessions, settings.resolved_models_dir, caller, body)


def _promote(
    sessions: sessionmaker[Session],
    reload: Callable[[], None],
    caller: Caller,
    name: str,
    version: str,
) -> ModelVersionOut:
    with sessions.begin() as session:
        out = version_out(registry.promote(session, caller.ctx, name=name, version=version))
    reload()
    return out


@router.post("/{name}/versions/{version}/promote", responses=responses(404, 409))
async def promote_model(
    name: str, version: str, sessions: SessionsDep, reload: ReloadDep, caller: CanPromote
) -> ModelVersionOut:
    """Promote a version to serving (gates apply); the previous serving version retires."""
    return await run_in_threadpool(_promote, sessions, reload, caller, name, version)


def _text_field(upload: ImportUpload, key: str) -> str:
    try:
        value = upload.fields[key].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArtifact(f"form field {key!r} is not UTF-8 text") from None
    if "\x00" in value:
        raise InvalidArtifact(f"form field {key!r} holds a NUL character")
    return value.strip()


def _import(
    sessions: sessionmaker[Session],
    settings: Settings,
    caller: Caller,
    upload: ImportUpload,
    workdir: Path,
) -> ModelVersionOut:
    schema = parse_import_schema(_text_field(upload, "schema").encode())
    assert upload.graph is not None  # receive_import refuses a body without the graph
    with sessions.begin() as session:
        row = import_onnx(
            session,
            caller.ctx,
            name=_text_field(upload, "name"),
            version=_text_field(upload, "version"),
            graph=upload.graph,
            schema=schema,
            models_dir=settings.resolved_models_dir,
            workdir=workdir,
            max_graph_bytes=settings.model_import_max_bytes,
            onnx_threads=settings.onnx_threads,
        )
        return version_out(row)


@router.post(
    IMPORT_PATH.removeprefix("/v1/models"),
    status_code=201,
    responses={**responses(409, 413, 422), 400: problem_schema()},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["name", "version", "schema", "onnx"],
                        "properties": {
                            "name": {"type": "string"},
                            "version": {"type": "string"},
                            "schema": {"type": "string", "description": "the import schema"},
                            "onnx": {"type": "string", "format": "binary"},
                        },
                    }
                }
            },
        }
    },
)
async def import_model(
    request: Request, sessions: SessionsDep, settings: SettingsDep, caller: CanRegister
) -> ModelVersionOut:
    """Import an ONNX model trained elsewhere (multipart: name, version, schema, onnx).

    The graph is streamed to disk and refused past the size limit (413); it is checked, run on
    records generated from the schema, stored by sha256 and registered. Nothing of a refused
    import stays on disk.
    """
    workdir = await run_in_threadpool(import_workdir, settings.resolved_models_dir)
    try:
        upload = await receive_import(
            request, workdir=workdir, max_graph_bytes=settings.model_import_max_bytes
        )
        return await run_in_threadpool(_import, sessions, settings, caller, upload, workdir)
    finally:
        await run_in_threadpool(shutil.rmtree, workdir, True)
