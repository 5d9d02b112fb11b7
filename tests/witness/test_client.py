"""The log's witness client against witnesses that misbehave: each answer is refused, none
ends a cosigning round with an exception other than WitnessRefused."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from governance.cli.server_process import free_port
from governance.config import WitnessSetting
from governance.witness.client import WitnessClient, WitnessConflict, WitnessRefused
from governance.witness.cosignature import cosign, cosigner_vkey
from tests.witness.conftest import SampleLog

NAME = "bad.test/w"
KEY = Ed25519PrivateKey.generate()

Answer = Callable[[str], Response]


@pytest.fixture
def witness() -> Iterator[tuple[list[Answer], str]]:
    """A witness whose answer each test chooses, served by uvicorn on a free port."""
    answers: list[Answer] = []

    async def add_checkpoint(request: Request) -> Response:
        body = (await request.body()).decode()
        return answers[0](body.split("\n\n", 1)[1])

    port = free_port()
    app = Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield answers, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def client(url: str, timeout: float = 5) -> WitnessClient:
    vkey = cosigner_vkey(NAME, KEY.public_key())
    return WitnessClient(WitnessSetting(name="bad", vkey=vkey, url=url), timeout)


def body_of(note: str) -> str:
    return note[: note.index("\n\n") + 1]


def test_a_good_answer_is_accepted(witness: tuple[list[Answer], str], test_log: SampleLog) -> None:
    answers, url = witness
    answers.append(lambda note: Response(cosign(body_of(note), NAME, KEY, int(time.time()))))
    assert client(url).add_checkpoint(0, [], test_log.note()).startswith(f"\u2014 {NAME} ")


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        # A cosignature of another tree.
        (lambda note: Response(cosign(body_of(note).replace("10", "11"), NAME, KEY, 1)), "verify"),
        # Signed by a key that is not the configured one.
        (
            lambda note: Response(cosign(body_of(note), NAME, Ed25519PrivateKey.generate(), 1)),
            "without a cosignature",
        ),
        (lambda note: Response("no signature lines\n"), "signature lines"),
        (lambda note: Response(b"\xff\xfe"), "UTF-8"),
        (lambda note: Response("x" * 100_000), "too large"),
        (lambda note: Response("9" * 5000 + "\n", 409, media_type="text/x.tlog.size"), "409"),
        (lambda note: Response("5\n", 409), "409"),
        (lambda note: Response("boom", 500), "HTTP 500"),
    ],
)
def test_bad_answers_are_refused(
    witness: tuple[list[Answer], str], test_log: SampleLog, answer: Answer, why: str
) -> None:
    answers, url = witness
    answers.append(answer)
    with pytest.raises(WitnessRefused, match=why) as refused:
        client(url).add_checkpoint(0, [], test_log.note())
    assert not isinstance(refused.value, WitnessConflict)


def test_a_409_names_the_witness_size(
    witness: tuple[list[Answer], str], test_log: SampleLog
) -> None:
    answers, url = witness
    answers.append(lambda note: Response(b"7\n", 409, headers={"content-type": "text/x.tlog.size"}))
    with pytest.raises(WitnessConflict) as conflict:
        client(url).add_checkpoint(0, [], test_log.note())
    assert conflict.value.size == 7


def test_a_witness_that_drips_its_answer_is_cut_off(
    witness: tuple[list[Answer], str], test_log: SampleLog
) -> None:
    answers, url = witness

    async def drip() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x"
            await asyncio.sleep(0.05)

    answers.append(lambda note: StreamingResponse(drip()))
    started = time.monotonic()
    with pytest.raises(WitnessRefused, match="too slow"):
        client(url, timeout=1).add_checkpoint(0, [], test_log.note())
    assert time.monotonic() - started < 4


def test_an_absent_witness_is_refused_quickly(test_log: SampleLog) -> None:
    with pytest.raises(WitnessRefused, match="unreachable"):
        client(f"http://127.0.0.1:{free_port()}", timeout=1).add_checkpoint(0, [], test_log.note())
