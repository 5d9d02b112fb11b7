"""Dataset errors. Messages name files, columns and rules, never a row's values.

A schema that does not validate is a 422; data whose bytes changed since registration is a
409 (the registered hash no longer describes it); a file that is not there is a 404.
"""

from __future__ import annotations

from typing import Any, ClassVar

from governance.errors import WardenError


class DatasetError(WardenError):
    """Base of every dataset error: an invalid schema or unreadable data (422).

    Args:
        message: a summary, safe to show.
        problems: every problem found, so one round trip fixes them all.
    """

    status_code: ClassVar[int] = 422
    title: ClassVar[str] = "Invalid dataset"
    type_slug: ClassVar[str] = "dataset-invalid"

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        self.summary = message
        self.problems = list(problems or [])
        extra: dict[str, Any] = {"problems": self.problems} if self.problems else {}
        full = message if not self.problems else f"{message}: " + "; ".join(self.problems)
        super().__init__(full, extra=extra)


class DatasetChanged(DatasetError):
    """The data's bytes no longer match the hash recorded when it was registered (409)."""

    status_code = 409
    title = "Dataset changed"
    type_slug = "dataset-changed"

    def __init__(self, *, file: str, expected: str, actual: str) -> None:
        # Hashes of the data are not secrets, and an operator needs both to investigate.
        super().__init__(
            f"dataset file {file!r} changed since it was registered "
            f"(expected sha256 {expected}, found {actual}); register it again"
        )
        self.extra.update({"file": file, "expected_sha256": expected, "actual_sha256": actual})


class DatasetFileMissing(DatasetError):
    """A file the schema names does not exist (404)."""

    status_code = 404
    title = "Dataset file not found"
    type_slug = "dataset-file-missing"
