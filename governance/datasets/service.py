"""The dataset registry: register data with its schema, and load it only while it is unchanged.

Registration validates the schema and reads every row once (so data that does not match its
schema is refused at once, not at training time), then records the files' content hashes.
Every later load checks them: data whose bytes changed since registration is refused with
:class:`~governance.datasets.errors.DatasetChanged` (409), so the privacy ledger never charges
one dataset for another's rows.

Every registration is placed in the privacy ledger its ROWS belong to
(:mod:`governance.datasets.ledgers`): the same rows under another name, re-encoded, or as a
subset or superset of a spent dataset join that dataset's ledger instead of opening a fresh
budget, and the ``datasets.register`` audit entry names the ledger and whom it is shared with.

The bundled datasets (``adult``) are registered automatically the first time they are used;
:meth:`DatasetService.ensure_bundled` does it ahead of time (for ``warden init``).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from governance.audit import log as audit_log
from governance.datasets.declaration import (
    BUNDLED_DIR,
    MAX_SCHEMA_BYTES,
    NAME_RE,
    DatasetSchema,
    parse_schema,
)
from governance.datasets.errors import DatasetChanged, DatasetError, DatasetFileMissing
from governance.datasets.fingerprint import RowFingerprint, fingerprint_rows
from governance.datasets.ledgers import Placement, members, place, serialise_registrations
from governance.datasets.models import Dataset
from governance.db.base import utcnow
from governance.kit.context import Context

if TYPE_CHECKING:
    from governance.datasets.tabular import LoadedDataset

BUNDLED = ("adult",)


def load_dataset(
    schema: DatasetSchema, *, expected_hashes: Mapping[str, str] | None = None
) -> LoadedDataset:
    """:func:`governance.datasets.tabular.load_dataset`, imported when rows are first read:
    it brings pandas, which a server start or a CLI command that reads no rows does not need."""
    from governance.datasets.tabular import load_dataset as load

    return load(schema, expected_hashes=expected_hashes)


@dataclass(frozen=True)
class _Bundled:
    schema: DatasetSchema
    schema_json: str
    loaded: LoadedDataset
    fp: RowFingerprint


@functools.cache
def _read_bundled(name: str) -> _Bundled:
    """A bundled dataset read, checked and fingerprinted once per process (seconds of CPU for
    Adult); its files ship with Warden and are read only here."""
    schema_path = BUNDLED_DIR / name / "schema.yaml"
    doc = _read_doc(schema_path)
    schema = parse_schema(doc, base_dir=schema_path.parent)
    loaded = load_dataset(schema)
    return _Bundled(schema, json.dumps(doc, sort_keys=True), loaded, fingerprint_rows(loaded))


class DatasetNotRegistered(DatasetError):
    """No dataset of that name is registered (404)."""

    status_code = 404
    title = "Dataset not registered"
    type_slug = "dataset-not-registered"


class DatasetExists(DatasetError):
    """A dataset of that name is registered already and ``replace`` was not asked for (409)."""

    status_code = 409
    title = "Dataset already registered"
    type_slug = "dataset-exists"


class DatasetPathRefused(DatasetError):
    """A path outside the folder that API registrations may read from (403)."""

    status_code = 403
    title = "Dataset path refused"
    type_slug = "dataset-path-refused"


def _read_doc(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DatasetFileMissing(f"schema file {path.name!r} not found")
    if path.stat().st_size > MAX_SCHEMA_BYTES:
        raise DatasetError(f"schema file {path.name!r} is larger than {MAX_SCHEMA_BYTES} bytes")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DatasetError(f"schema file {path.name!r} is not valid UTF-8 YAML") from exc
    if not isinstance(doc, dict):
        raise DatasetError("invalid dataset schema", problems=["schema: expected a mapping"])
    return doc


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _base_dir(row: Dataset) -> Path:
    # Bundled data lives inside the installed package, which moves on upgrade: resolve it now.
    return BUNDLED_DIR / row.name if row.bundled else Path(row.base_dir)


class DatasetService:
    def register(
        self,
        session: Session,
        ctx: Context,
        *,
        name: str,
        schema_path: Path,
        data_path: Path | None = None,
        replace: bool = False,
        allowed_root: Path | None = None,
    ) -> Dataset:
        """Validate a schema and its data, record the content hashes, and audit it.

        Args:
            session: the caller's transaction.
            ctx: who registers.
            name: the dataset's name (replaces the schema's own ``name``).
            schema_path: the ``warden.dataset/1`` YAML file.
            data_path: the data file, for a schema that splits one file at random
                (``split.kind: random``); it replaces the path the schema names. When None, the
                files the schema names, relative to its folder, are used.
            replace: register again under a name that exists (new data or schema). The
                dataset's privacy ledger is kept: the same people may be in the new rows.
            allowed_root: when given, both paths must lie inside it (API registrations).

        Returns:
            The registered row.

        Raises:
            DatasetError: the schema or data is invalid (422).
            DatasetFileMissing: a file is missing (404).
            DatasetExists: the name is taken and ``replace`` is False (409).
            DatasetPathRefused: a path lies outside ``allowed_root`` (403).
        """
        if not NAME_RE.match(name):
            raise DatasetError(f"dataset name must match {NAME_RE.pattern}")
        if allowed_root is not None:
            for path in (schema_path, data_path):
                if path is not None and not _inside(path, allowed_root):
                    raise DatasetPathRefused(
                        "API registrations may only read files inside the datasets folder "
                        f"({allowed_root.name}/ under the data directory)"
                    )
        existing = session.scalar(select(Dataset).where(Dataset.name == name))
        if existing is not None and not replace:
            raise DatasetExists(
                f"dataset {name!r} is registered; pass replace to register it again"
            )

        doc = copy.deepcopy(_read_doc(schema_path))
        doc["name"] = name
        base_dir = schema_path.resolve().parent
        if data_path is not None:
            split = doc.get("split")
            if not isinstance(split, dict) or split.get("kind") != "random":
                raise DatasetError(
                    "--data needs a schema with split.kind: random (one file split at random); "
                    "this schema names its own train and test files"
                )
            given = split.get("file")
            file_doc: dict[str, Any] = given if isinstance(given, dict) else {}
            split["file"] = {**file_doc, "path": data_path.name}
            base_dir = data_path.resolve().parent
        schema = parse_schema(doc, base_dir=base_dir)
        loaded = load_dataset(schema)
        try:
            schema_json = json.dumps(doc, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise DatasetError("the schema holds values that are not plain YAML data") from exc
        return self._record(
            session,
            ctx,
            existing=existing,
            schema=schema,
            schema_json=schema_json,
            loaded=loaded,
            base_dir=str(base_dir),
            bundled=False,
        )

    def _record(
        self,
        session: Session,
        ctx: Context,
        *,
        existing: Dataset | None,
        schema: DatasetSchema,
        schema_json: str,
        loaded: LoadedDataset,
        base_dir: str,
        bundled: bool,
        fp: RowFingerprint | None = None,
    ) -> Dataset:
        src = schema.source
        source = {"citation": src.citation, "licence": src.licence, "url": src.url, "doi": src.doi}
        fp = fp or fingerprint_rows(loaded)
        serialise_registrations(session)
        unverified = self._backfill(session)
        placement = place(
            session,
            name=schema.name,
            fp=fp,
            own=existing.ledger_id if existing is not None else None,
        )
        values: dict[str, Any] = {
            "content_hash": loaded.content_hash,
            "file_hashes": json.dumps(loaded.file_hashes, sort_keys=True),
            "schema": schema_json,
            "base_dir": base_dir,
            "privacy_unit": schema.privacy_unit,
            "source": json.dumps(source, sort_keys=True),
            "bundled": bundled,
            "train_rows": len(loaded.train),
            "test_rows": len(loaded.test),
            "updated_at": utcnow(),
            "ledger_id": placement.ledger_id,
            "row_fingerprint": fp.digest,
            "values_clipped": json.dumps(loaded.values_clipped, sort_keys=True),
        }
        previous = existing.content_hash if existing is not None else None
        if existing is None:
            row = Dataset(name=schema.name, registered_by=ctx.name, **values)
            session.add(row)
        else:
            row = existing
            for key, value in values.items():
                setattr(row, key, value)
            row.registered_by = ctx.name
        session.flush()
        details: dict[str, Any] = {
            "content_hash": row.content_hash,
            "file_hashes": loaded.file_hashes,
            "train_rows": row.train_rows,
            "test_rows": row.test_rows,
            "privacy_unit": row.privacy_unit,
            "bundled": bundled,
            "row_fingerprint": fp.digest,
            "values_clipped": loaded.values_clipped,
            "ledger": self._ledger_details(session, row, placement, unverified),
        }
        if previous is not None:
            details["previous_content_hash"] = previous
        audit_log.append(
            session,
            [
                ctx.event(
                    "datasets.register",
                    "register" if existing is None else "replace",
                    resource={"dataset": row.name},
                    details=details,
                )
            ],
        )
        return row

    def _backfill(self, session: Session) -> list[str]:
        """Fingerprint datasets registered before fingerprints existed (migration 0008).

        Their rows join the ledger placement like a new registration's, so a copy of them is
        recognised. Returns the names whose files could not be read as registered: their rows
        cannot be compared (their ledgers still hold their runs; byte-identical copies were
        joined by the migration).
        """
        unverified: list[str] = []
        pending = session.scalars(
            select(Dataset)
            .where(Dataset.row_fingerprint.is_(None))
            .order_by(Dataset.id)
            .with_for_update()
        ).all()
        for row in pending:
            try:
                fp = fingerprint_rows(self.load(row))
            except DatasetError:
                unverified.append(row.name)
                continue
            row.ledger_id = place(session, name=row.name, fp=fp, own=row.ledger_id).ledger_id
            row.row_fingerprint = fp.digest
        session.flush()
        return unverified

    def _ledger_details(
        self, session: Session, row: Dataset, placement: Placement, unverified: list[str]
    ) -> dict[str, Any]:
        details: dict[str, Any] = {
            "id": placement.ledger_id,
            "opened": placement.opened,
            "shared_with": self.shared_with(session, row),
            "matched": list(placement.matched),
        }
        if placement.merged:
            details["merged_ledgers"] = list(placement.merged)
        if unverified:
            details["unverified_datasets"] = unverified
        return details

    def shared_with(self, session: Session, row: Dataset) -> list[str]:
        """The other datasets charging the same privacy ledger, sorted."""
        return [n for n in members(session, row.ledger_id) if n != row.name]

    def ensure_bundled(self, session: Session, ctx: Context, name: str = "adult") -> Dataset:
        """Register a bundled dataset unless a dataset of that name is registered already.

        Raises:
            DatasetNotRegistered: ``name`` is not a bundled dataset.
        """
        existing = session.scalar(select(Dataset).where(Dataset.name == name))
        if existing is not None:
            return existing
        if name not in BUNDLED:
            raise DatasetNotRegistered(f"dataset {name!r} is not registered")
        bundle = _read_bundled(name)
        return self._record(
            session,
            ctx,
            existing=None,
            schema=bundle.schema,
            schema_json=bundle.schema_json,
            loaded=bundle.loaded,
            base_dir=f"bundled:{name}",
            bundled=True,
            fp=bundle.fp,
        )

    def list(self, session: Session) -> list[Dataset]:
        return list(session.scalars(select(Dataset).order_by(Dataset.name)))

    def get(self, session: Session, name: str) -> Dataset:
        """A registered dataset.

        Raises:
            DatasetNotRegistered: no dataset of that name.
        """
        row = session.scalar(select(Dataset).where(Dataset.name == name))
        if row is None:
            raise DatasetNotRegistered(f"dataset {name[:64]!r} is not registered")
        return row

    def resolve(self, session: Session, ctx: Context, name: str) -> Dataset:
        """A registered dataset, registering a bundled one on first use."""
        if name in BUNDLED:
            return self.ensure_bundled(session, ctx, name)
        return self.get(session, name)

    def schema_of(self, row: Dataset) -> DatasetSchema:
        """The registered schema, with its data paths resolved."""
        return parse_schema(json.loads(row.schema), base_dir=_base_dir(row))

    def load(self, row: Dataset) -> LoadedDataset:
        """Read a registered dataset, refusing it if its bytes changed since registration.

        Raises:
            DatasetChanged: a file's content hash differs from the registered one (409).
            DatasetFileMissing: a file is gone (404).
            DatasetError: the data no longer matches its schema (422).
        """
        expected: dict[str, str] = json.loads(row.file_hashes)
        loaded = load_dataset(self.schema_of(row), expected_hashes=expected)
        if loaded.content_hash != row.content_hash:
            # Every file matched but the combination did not (a file added or renamed).
            raise DatasetChanged(
                file=row.name, expected=row.content_hash, actual=loaded.content_hash
            )
        return loaded


datasets = DatasetService()
