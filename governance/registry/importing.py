"""Importing a model trained elsewhere: an ONNX graph and its schema become a registered version.

The graph is checked without running it (:func:`inference.onnx_model.inspect_graph`), then run
on records generated from the schema, which must give finite outputs (and probabilities where
the schema says so). Only then is an artifact written (``model.onnx``, ``model_card.json`` and a
``warden.model/1`` manifest pinning both by sha256) and handed to
:meth:`RegistryService.register`: from there stages, gates, leases and audit are those of every
model. An imported model carries no DP claim (no ledger run produced it), and its card records
the provenance its importer declared.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.errors import PayloadTooLarge
from governance.kit.context import Context
from governance.private_files import private_dir
from governance.registry.errors import InvalidArtifact, StageConflict, UnsafeModelFormat
from governance.registry.import_schema import (
    CARD_FIELDS,
    CARD_FORMAT,
    MODEL_CARD_FILE,
    ImportSchema,
)
from governance.registry.models import ModelVersion
from governance.registry.service import registry
from inference.errors import ManifestError
from inference.manifest import parse_manifest

if TYPE_CHECKING:
    from inference.onnx_model import GraphFacts

NO_DP_CLAIM = (
    "no DP guarantee: this model was trained outside Warden, so no privacy-ledger run produced it"
)
# Where uploads and artifacts are assembled, beside the model store (same filesystem).
WORK_FOLDER = ".imports"


def import_workdir(models_dir: Path) -> Path:
    """A fresh private folder for one import; the caller removes it whatever happens."""
    return Path(tempfile.mkdtemp(dir=private_dir(models_dir / WORK_FOLDER)))


def _card(
    schema: ImportSchema, *, name: str, version: str, graph_sha256: str, facts: GraphFacts, by: str
) -> bytes:
    card = {
        "format": CARD_FORMAT,
        "model_details": {
            "name": name,
            "version": version,
            "imported": "onnx",
            "graph_sha256": graph_sha256,
            "producer": facts.producer,
            "opsets": {k or "ai.onnx": v for k, v in sorted(facts.opsets.items())},
            "differential_privacy": NO_DP_CLAIM,
        },
        # As the importer declared it: Warden did not see the training and vouches for none.
        "provenance": {key: schema.card.get(key, "") for key in CARD_FIELDS},
        "declared_by": by,
        "intended_use": schema.card.get("intended_use", ""),
        "ethical_considerations": [NO_DP_CLAIM],
    }
    return json.dumps(card, indent=2, sort_keys=True).encode()


def import_onnx(
    session: Session,
    ctx: Context,
    *,
    name: str,
    version: str,
    graph: Path,
    schema: ImportSchema,
    models_dir: Path,
    workdir: Path,
    max_graph_bytes: int,
    onnx_threads: int = 1,
) -> ModelVersion:
    """Check, run and register an ONNX graph under ``name`` and ``version``.

    Args:
        graph: the uploaded ``.onnx`` file (inside ``workdir``, or the CLI's path).
        schema: the parsed import schema.
        models_dir: Warden's model store.
        workdir: a private folder for the artifact being assembled; the caller removes it.
        max_graph_bytes: the largest graph accepted.

    Raises:
        PayloadTooLarge: the graph is over the limit (413).
        InvalidArtifact: the graph, the schema or their pairing is refused (422).
        StageConflict: that name and version are registered already (409).
    """
    from inference.onnx_model import (
        OnnxModel,
        check_outputs,
        probe_records,
        refuse_unsafe_format,
        save_graph_artifact,
    )

    size = graph.stat().st_size
    if size > max_graph_bytes:
        raise PayloadTooLarge(f"the ONNX file exceeds {max_graph_bytes} bytes")
    with graph.open("rb") as fh:
        data = fh.read(max_graph_bytes + 1)
    try:
        refuse_unsafe_format(data[:16], graph.name)
    except ManifestError as exc:
        raise UnsafeModelFormat(str(exc)) from None
    try:
        manifest = parse_manifest(schema.manifest_doc(name, version))
        model = OnnxModel(manifest, data, torch.device("cpu"), threads=onnx_threads)
        check_outputs(model, probe_records(manifest))
    except ManifestError as exc:
        raise InvalidArtifact(str(exc)) from None
    # Checked after the graph ran: the session's first query opens its transaction, which is
    # then not held open while the graph is checked and run.
    taken = session.scalar(
        select(ModelVersion.id).where(ModelVersion.name == name, ModelVersion.version == version)
    )
    if taken is not None:
        raise StageConflict(f"model {name} version {version} is registered")
    sha = hashlib.sha256(data).hexdigest()
    card = _card(
        schema, name=name, version=version, graph_sha256=sha, facts=model.facts, by=ctx.name
    )
    artifact = workdir / "artifact"
    try:
        save_graph_artifact(artifact, data, manifest, extra_files={MODEL_CARD_FILE: card})
        trained_by = (schema.card.get("trained_by") or "")[:64] or None
        return registry.register(
            session, ctx, source_dir=artifact, models_dir=models_dir, trained_by=trained_by
        )
    finally:
        shutil.rmtree(artifact, ignore_errors=True)
