"""Regulations and standards as data: one YAML file per framework under ``policies/frameworks/``.

Each file lists the framework's articles, headings or controls, and for each which Warden
controls answer it and which report sections hold the evidence; an item Warden cannot evidence
names the organisation's fields or documents (``policies/organisation.yaml``) that do, and
what the organisation must supply otherwise. An item's status is computed, never declared
(docs/reports.md#frameworks).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from governance.reports.document import (
    Control,
    ControlStatus,
    Framework,
    FrameworkItem,
    Organisation,
)
from governance.reports.errors import InvalidReportConfig, UnknownFramework

FRAMEWORKS_DIR = "frameworks"
# The worse status wins when an item takes several: an exception is a deviation on record, a
# gap is missing evidence, and either outweighs what is effective.
_RANK: dict[ControlStatus, int] = {
    "not_applicable": 0,
    "effective": 1,
    "gap": 2,
    "exception": 3,
}


class _ItemFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: str = Field(min_length=1)
    title: str = Field(min_length=1)
    controls: list[str] = []
    evidence: list[str] = []
    organisation: list[str] = Field(
        default=[], description="organisation.yaml fields, or documents.<name>"
    )
    supply: str = Field(default="", description="what the organisation must supply if missing")
    applies_when: str = Field(
        default="", description="an organisation key; the item is not applicable while it is empty"
    )


class _FrameworkFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    source: str
    items: list[_ItemFile] = Field(min_length=1)


def _read(path: Path) -> _FrameworkFile:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        parsed = _FrameworkFile.model_validate(doc)
    except (yaml.YAMLError, ValidationError) as exc:
        raise InvalidReportConfig(
            f"{FRAMEWORKS_DIR}/{path.name} does not describe a framework: {exc}"
        ) from None
    if parsed.id != path.stem:
        raise InvalidReportConfig(f"{FRAMEWORKS_DIR}/{path.name} must have id {path.stem!r}")
    return parsed


def available(policies_dir: Path) -> list[str]:
    """The ids of the frameworks shipped or added under ``policies/frameworks/``."""
    folder = policies_dir / FRAMEWORKS_DIR
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load_frameworks(policies_dir: Path, only: list[str] | None = None) -> list[_FrameworkFile]:
    """The framework files, all of them or the ``only`` ones (in the order asked).

    Raises:
        UnknownFramework: an id in ``only`` has no file.
        InvalidReportConfig: a file does not have the documented shape.
    """
    known = available(policies_dir)
    wanted = known if not only else list(dict.fromkeys(only))
    unknown = [f for f in wanted if f not in known]
    if unknown:
        raise UnknownFramework(
            f"no framework {', '.join(repr(u[:64]) for u in unknown)}; known: {', '.join(known)}"
        )
    return [_read(policies_dir / FRAMEWORKS_DIR / f"{f}.yaml") for f in wanted]


def _organisation_value(org: Organisation, key: str) -> str | None:
    if key.startswith("documents."):
        return org.documents.get(key.removeprefix("documents."))
    value = getattr(org, key, None)
    if isinstance(value, list):
        return "; ".join(value) or None
    return value if isinstance(value, str) and value else None


def _item(item: _ItemFile, controls: dict[str, Control], org: Organisation) -> FrameworkItem:
    if item.applies_when and not _organisation_value(org, item.applies_when):
        return FrameworkItem(
            ref=item.ref,
            title=item.title,
            status="not_applicable",
            controls=item.controls,
            evidence=item.evidence,
            statement=f"applies only when the organisation declares {item.applies_when} "
            "in policies/organisation.yaml; none is declared",
            organisation={},
        )
    statuses: list[ControlStatus] = []
    said: list[str] = []
    for cid in item.controls:
        control = controls.get(cid)
        if control is None:
            raise InvalidReportConfig(f"framework item {item.ref!r} names no control {cid!r}")
        statuses.append(control.status)
        said.append(f"{cid} {control.status.replace('_', ' ')}: {control.note}")
    values = {key: _organisation_value(org, key) for key in item.organisation}
    supplied = {k: v for k, v in values.items() if v}
    missing = [k for k, v in values.items() if not v]
    if item.organisation:
        statuses.append("gap" if missing else "effective")
        if missing:
            said.append(
                f"the organisation must supply {', '.join(missing)} in "
                "policies/organisation.yaml" + (f": {item.supply}" if item.supply else "")
            )
        else:
            said.append("declared by the organisation in policies/organisation.yaml")
    if not statuses:
        # Nothing Warden records answers it: the organisation must.
        statuses.append("gap")
        said.append(f"Warden holds no evidence for this item; {item.supply or 'supply it'}")
    status = max(statuses, key=lambda s: _RANK[s])
    return FrameworkItem(
        ref=item.ref,
        title=item.title,
        status=status,
        controls=item.controls,
        evidence=item.evidence,
        statement="; ".join(said),
        organisation={k: v for k, v in supplied.items() if v is not None},
    )


def map_frameworks(
    files: list[_FrameworkFile], controls: list[Control], org: Organisation
) -> list[Framework]:
    """Each framework's items with their status taken from the controls and the organisation.

    Raises:
        InvalidReportConfig: an item names a control the report does not have.
    """
    by_id = {c.id: c for c in controls}
    return [
        Framework(
            id=f.id,
            name=f.name,
            source=f.source,
            items=[_item(item, by_id, org) for item in f.items],
        )
        for f in files
    ]
