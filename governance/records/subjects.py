"""Whose data subjects are whose: subject ids are scoped per client principal.

Two client services that send the same ``subject_id`` name two different people as far as
Warden knows: each subject id is read in the scope of the client that sent it
(``client:<principal>``), so the clients get different data keys, and erasing one client's
subject leaves the other's records readable. Clients that do serve the same people (two front
ends of one application) are put in one shared namespace by a compliance officer, in
``policies/subjects.yaml``; their subject ids are then read in ``shared:<namespace>``.

The file is deployment configuration, like the other files in ``policies/``: it is changed
through the deployment's reviewed repository and read when a server starts (every replica must
run with the same file). A broken file stops the start. Moving a client into (or out of) a
namespace applies to its records from then on; records already made stay under the scope they
were made in, and an erasure naming the client reaches both (:meth:`RecordService.erase`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from governance.records.errors import SubjectScopesError

__all__ = ["SUBJECTS_FILE", "SubjectScopes", "client_scope", "load_subject_scopes", "shared_scope"]

SUBJECTS_FILE = "subjects.yaml"
SUBJECTS_FORMAT = "warden.subjects/1"
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def client_scope(principal: str) -> str:
    return f"client:{principal}"


def shared_scope(namespace: str) -> str:
    return f"shared:{namespace}"


class SubjectScopes:
    """The shared namespaces, each with its client principals (a client is in at most one).

    Args:
        namespaces: namespace name → its clients' principal names.
    """

    def __init__(self, namespaces: Mapping[str, Sequence[str]] | None = None) -> None:
        self.namespaces = {ns: tuple(clients) for ns, clients in (namespaces or {}).items()}
        self._owner = {c: ns for ns, clients in self.namespaces.items() for c in clients}

    def __repr__(self) -> str:
        return f"SubjectScopes({sorted(self.namespaces)})"

    def namespace_of(self, principal: str) -> str | None:
        return self._owner.get(principal)

    def scope_of(self, principal: str) -> str:
        """The scope a principal's subject ids are read in."""
        namespace = self._owner.get(principal)
        return client_scope(principal) if namespace is None else shared_scope(namespace)


def load_subject_scopes(policies_dir: Path) -> SubjectScopes:
    """Read and validate ``<policies_dir>/subjects.yaml``; no file: no shared namespace.

    Raises:
        SubjectScopesError: the file is unreadable, not YAML, or invalid (all problems listed).
    """
    path = policies_dir / SUBJECTS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return SubjectScopes()
    except OSError as exc:
        raise SubjectScopesError(f"cannot read {path}: {exc.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        raise SubjectScopesError(f"{path} is not valid YAML") from None
    if not isinstance(doc, dict):
        raise SubjectScopesError(f"{path} must be a mapping")
    problems: list[str] = []
    if doc.get("format") != SUBJECTS_FORMAT:
        problems.append(f"'format' must be {SUBJECTS_FORMAT!r}")
    unknown = sorted(str(k)[:64] for k in doc if k not in ("format", "shared"))
    if unknown:
        problems.append(f"unknown keys: {', '.join(unknown)}")
    shared = doc.get("shared") or {}
    namespaces: dict[str, tuple[str, ...]] = {}
    seen: dict[str, str] = {}
    if not isinstance(shared, dict):
        problems.append("'shared' must be a mapping of namespace name to its clients")
        shared = {}
    for name, entry in shared.items():
        if not isinstance(name, str) or not _NAMESPACE.fullmatch(name):
            problems.append(
                f"namespace {str(name)[:64]!r}: a name is 1-64 letters, digits, '.', '_' or "
                "'-', starting with a letter or digit"
            )
            continue
        clients = entry.get("clients") if isinstance(entry, dict) else None
        if (
            not isinstance(clients, list)
            or not clients
            or not all(isinstance(c, str) and 0 < len(c) <= 64 for c in clients)
        ):
            problems.append(f"shared.{name}.clients must be a non-empty list of principal names")
            continue
        for client in clients:
            if client in seen:
                problems.append(
                    f"client {client!r} is in two namespaces ({seen[client]!r} and {name!r})"
                )
            seen[client] = name
        namespaces[name] = tuple(dict.fromkeys(clients))
    if problems:
        raise SubjectScopesError(f"{path} is invalid: " + "; ".join(problems))
    return SubjectScopes(namespaces)
