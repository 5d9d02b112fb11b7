"""The request's database access as FastAPI dependencies: one transaction per request.

``TransactionDep`` is the request's session: committed when the endpoint returns, before its
answer is sent, and rolled back on any error. An endpoint with work to do after the commit
(a reload) asks for ``SessionsDep`` and opens its transaction itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from governance.kit.slots import Slot

ENGINE: Slot[Engine] = Slot("engine")
SESSIONS: Slot[sessionmaker[Session]] = Slot("sessions")
# Read-only work that never takes SQLite's write lock.
READ_SESSIONS: Slot[sessionmaker[Session]] = Slot("read_sessions")


def _transaction(connection: HTTPConnection) -> Iterator[Session]:
    with SESSIONS.get(connection.app).begin() as session:
        yield session


TransactionDep = Annotated[Session, Depends(_transaction, scope="function")]
SessionsDep = Annotated[sessionmaker[Session], Depends(SESSIONS)]
ReadSessionsDep = Annotated[sessionmaker[Session], Depends(READ_SESSIONS)]
EngineDep = Annotated[Engine, Depends(ENGINE)]
