"""The journal tests use the audit tests' empty, migrated log."""

from tests.audit.conftest import audit_db  # noqa: F401
