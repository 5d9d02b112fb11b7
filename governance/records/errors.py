"""Errors of the records domain."""

from __future__ import annotations

from governance.errors import BadRequest, Conflict, NotFound, Unprocessable, WardenError
from governance.vault.errors import KeyDestroyed


class RecordsError(WardenError):
    """Base of every records error."""


class RecordNotFound(RecordsError, NotFound):
    type_slug = "record-not-found"


class RecordErased(KeyDestroyed, RecordsError):
    """The record's data key was destroyed by an erasure: it cannot be read any more."""


class InvalidSubject(RecordsError, BadRequest):
    type_slug = "invalid-subject"


class RetentionPolicyError(RecordsError):
    """``policies/retention.yaml`` is missing or invalid (refused, never guessed).

    The server refuses to start with such a file (:meth:`governance.runtime.Runtime.start`).
    A file broken while the server runs makes the requests that need it (a purge, a compliance
    report) fail closed with a 503: the operator's configuration, not the caller's request and
    not a bug.
    """

    status_code = 503
    title = "Retention policy unavailable"
    type_slug = "retention-policy"


class AmbiguousSubject(RecordsError, Conflict):
    """An erasure named a subject id that several scopes (clients, namespaces) hold keys for."""

    type_slug = "ambiguous-subject"


class UnknownScope(RecordsError, Unprocessable):
    """An erasure named a client principal or a shared namespace that does not exist."""

    type_slug = "unknown-subject-scope"


class SubjectScopesError(RecordsError):
    """``policies/subjects.yaml`` is invalid: the server refuses to start with it."""

    status_code = 503
    title = "Subject namespaces unavailable"
    type_slug = "subject-scopes"
