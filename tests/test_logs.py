"""Logged exceptions keep their frames and types and lose their messages."""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Iterator

import pytest
from pydantic import BaseModel, ValidationError

from governance.logs import WITHHELD, WithheldFormatter, configure_logging


class Record(BaseModel):
    age: int


def _validate(payload: dict[str, object]) -> Record:
    return Record.model_validate(payload)


def _handle_request(secret: str) -> None:
    # The secret arrives at run time, as request data does: the source lines the traceback
    # quotes name variables, not values.
    try:
        {"token": secret}[secret + "-missing"]
    except KeyError as exc:
        try:
            _validate({"age": secret})
        except ValidationError:
            raise RuntimeError(f"while handling {secret}") from exc


@pytest.fixture
def root_handler() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers.clear()
    configure_logging()
    stream = io.StringIO()
    assert len(root.handlers) == 1
    handler = root.handlers[0]
    assert isinstance(handler.formatter, WithheldFormatter)
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    root.handlers[:], root.level = saved
    logging.getLogger("casbin").setLevel(logging.NOTSET)


def test_a_logged_exception_has_its_frames_and_types_but_no_message(
    root_handler: io.StringIO,
) -> None:
    secret = secrets.token_hex(8)
    try:
        _handle_request(secret)
    except RuntimeError:
        # As uvicorn logs an error from the app (warden serve sends its records here).
        logging.getLogger(__name__).exception("Exception in ASGI application")
    text = root_handler.getvalue()
    assert "Exception in ASGI application" in text
    assert secret not in text
    # The chain, oldest first: the KeyError is the cause named by ``from``.
    assert text.index("builtins.KeyError") < text.index("builtins.RuntimeError")
    assert f"builtins.RuntimeError: {WITHHELD}" in text
    assert "_handle_request" in text and "test_logs.py" in text


def test_an_exception_in_context_is_shown_as_python_shows_it() -> None:
    formatter = WithheldFormatter()
    secret = secrets.token_hex(8)
    try:
        try:
            raise ValueError(secret)
        except ValueError:
            raise LookupError(secret)  # noqa: B904 - the implicit context is the point
    except LookupError as exc:
        text = formatter.formatException((type(exc), exc, exc.__traceback__))
    assert secret not in text
    assert text.index("builtins.ValueError") < text.index("builtins.LookupError")
    assert formatter.formatException((None, None, None)) == ""


def test_casbin_does_not_write_the_policy_to_the_log(root_handler: io.StringIO) -> None:
    # As in a fresh process. Casbin logs the whole policy while it builds its first enforcer,
    # and only then disables its loggers (every Enforcer() without enable_log does), so
    # tests that built one before this must not decide what this one sees.
    loggers = [logging.getLogger(name) for name in ("casbin", "casbin.policy", "casbin.enforcer")]
    saved = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = False
    try:
        logging.getLogger("casbin.policy").info("p : sub, obj, act : [['alice', 'model:x', 'go']]")
        logging.getLogger("casbin.enforcer").warning("a warning still gets through")
    finally:
        for logger, disabled in zip(loggers, saved, strict=True):
            logger.disabled = disabled
    text = root_handler.getvalue()
    assert "alice" not in text and "a warning still gets through" in text
