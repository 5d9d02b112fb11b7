"""The organisation's own record (``policies/organisation.yaml``): what Warden cannot evidence.

The data protection officer fills it: the controller, purposes, categories of data and
subjects, recipients, retention and security measures of GDPR Art. 30, and references to the
documents kept outside Warden (a DPIA, a PIPL impact assessment). A missing file reads as an
empty record, so every field it would fill is reported as a gap, never invented.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from governance.reports.document import Organisation
from governance.reports.errors import InvalidReportConfig

ORGANISATION_FILE = "organisation.yaml"
# The Art. 30(1) fields a record of processing must hold (representative and transfers may
# rightly be empty, so they are not required).
ART30_FIELDS = (
    "controller",
    "purposes",
    "data_categories",
    "subject_categories",
    "recipients",
    "retention",
    "security_measures",
)
_TEXT = ("controller", "representative", "dpo", "retention")
_LISTS = (
    "purposes",
    "data_categories",
    "subject_categories",
    "recipients",
    "transfers",
    "security_measures",
)


def _text(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int | float):
        raise InvalidReportConfig(f"{ORGANISATION_FILE}: {key} must be text")
    return str(value).strip() or None


def _list(doc: dict[str, Any], key: str) -> list[str]:
    value = doc.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise InvalidReportConfig(f"{ORGANISATION_FILE}: {key} must be a list of text")
    return [str(v).strip() for v in value if str(v).strip()]


def load_organisation(policies_dir: Path) -> Organisation:
    """Read ``<policies_dir>/organisation.yaml`` (an absent file is an empty record).

    Raises:
        InvalidReportConfig: the file is not YAML, or a field has the wrong shape.
    """
    path = policies_dir / ORGANISATION_FILE
    doc: Any = {}
    if path.is_file():
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise InvalidReportConfig(f"{ORGANISATION_FILE} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidReportConfig(f"{ORGANISATION_FILE} must be a mapping")
    documents = doc.get("documents") or {}
    if not isinstance(documents, dict):
        raise InvalidReportConfig(f"{ORGANISATION_FILE}: documents must be a mapping")
    fields: dict[str, Any] = {k: _text(doc, k) for k in _TEXT}
    fields.update({k: _list(doc, k) for k in _LISTS})
    return Organisation(
        source=f"policies/{ORGANISATION_FILE}",
        documents={str(k): str(v).strip() for k, v in documents.items() if str(v or "").strip()},
        missing=[k for k in ART30_FIELDS if not fields[k]],
        **fields,
    )
