"""bench/predict's third side: Warden's governed server as the foundation issue measured it.

The foundation issue set bench/predict's target (governed/bare >= 0.85) before the audit log and
the encrypted record store existed; the audit issue re-measures the same ratio with them on
(>= 0.75). This server is ``warden serve`` (the same ``create_app``, settings, uvicorn setup and
heap freeze) with those two taken out of the runtime: every request still goes through the API
key, the Casbin decision, the body limits, validation, the micro-batcher and the problem
documents, and the predict path still encodes and digests its documents for an audit entry,
which is then not written.

It lives in ``bench/`` on purpose. Warden itself cannot serve without its audit (fail closed):
nothing under ``governance/`` can build this runtime, and no setting reaches it.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn

from governance.api.app import create_app
from governance.api.server_limits import uvicorn_options
from governance.config import Settings
from governance.kit.events import AuditEvent
from governance.logs import configure_logging
from governance.predict.recording import PreparedRecord
from governance.runtime import Runtime


class NotJournaled:
    """Numbers each entry as the journal would, and makes none of them durable."""

    def __init__(self) -> None:
        self._seq = itertools.count(1)

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def append(self, events: Sequence[AuditEvent], record: object | None = None) -> list[int]:
        return [next(self._seq) for _ in events]

    def append_sync(self, events: Sequence[AuditEvent], timeout: float = 30.0) -> list[int]:
        return [next(self._seq) for _ in events]

    def problem(self, *, probe: bool = False) -> str | None:
        return None


class NotRecorded:
    """Stores no record, as before the encrypted store existed."""

    async def prepare(self, **request: Any) -> PreparedRecord:
        return PreparedRecord(record_id=None, data_key_id=None, row=None)


def main(port: int) -> None:
    configure_logging()
    settings = Settings()
    runtime = Runtime(settings)
    # Under the same deadline guard as warden serve; the writer process is never started.
    runtime.audit.inner = NotJournaled()
    runtime.recorder = NotRecorded()
    uvicorn.run(
        create_app(settings, runtime, freeze_heap=True),
        host="127.0.0.1",
        port=port,
        **uvicorn_options(settings),
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
