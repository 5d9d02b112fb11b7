"""Every integer a ``warden`` command takes is bounded, and as the API bounds it where both take it.

A CLI integer past a column's range reached the database driver (SQLite's OverflowError) and
ended the command with a traceback; one like ``--bootstrap 1000000000`` ran for hours where the
API refuses it. This walks every command of the CLI, as tests/api/test_integer_bounds.py walks
the routes, and names each integer parameter without bounds inside the 64-bit column range.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from typer.testing import CliRunner

from governance.cli.main import app
from governance.db.base import DB_BIGINT_MAX, DB_BIGINT_MIN
from governance.fairness.schemas import AuditCreate
from governance.policy.schemas import ImpactRequest
from governance.privacy.schemas import TrainingRunCreate


def _int_params(command: Any, path: str) -> Iterator[tuple[str, Any]]:
    commands = getattr(command, "commands", None)
    if commands is not None:
        for name, sub in commands.items():
            yield from _int_params(sub, f"{path} {name}")
        return
    for param in command.params:
        if param.type_descriptor.annotation is int:
            yield f"{path} {param.name}", param


def test_every_integer_a_command_takes_is_bounded() -> None:
    params = list(_int_params(typer.main.get_command(app), "warden"))
    assert len(params) >= 15
    unbounded = [
        where
        for where, p in params
        if p.min is None or p.max is None or p.min < DB_BIGINT_MIN or p.max > DB_BIGINT_MAX
    ]
    assert not unbounded, "integers without bounds:\n" + "\n".join(unbounded)


@pytest.mark.parametrize(
    "args",
    [
        ["policy", "diff", "1", str(2**64)],
        ["policy", "history", "--limit", str(2**64)],
        ["fairness", "show", str(2**63)],
        ["fairness", "audit", "m", "--bootstrap", "1000000000"],
    ],
)
def test_an_integer_out_of_range_is_a_usage_error(args: list[str]) -> None:
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output  # usage error, before anything runs
    assert "less than or equal to" in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _field_bounds(model: type[BaseModel], name: str) -> tuple[int | None, int | None]:
    low = high = None
    for rule in model.model_fields[name].metadata:
        low = getattr(rule, "ge", low)
        high = getattr(rule, "le", high)
    return low, high


@pytest.mark.parametrize(
    ("option", "model", "field"),
    [
        ("warden fairness audit bootstrap", AuditCreate, "bootstrap"),
        ("warden fairness audit seed", AuditCreate, "seed"),
        ("warden policy impact days", ImpactRequest, "days"),
        ("warden policy impact examples", ImpactRequest, "examples"),
        ("warden train epochs", TrainingRunCreate, "epochs"),
        ("warden train seed", TrainingRunCreate, "seed"),
        ("warden privacy train epochs", TrainingRunCreate, "epochs"),
        ("warden privacy train seed", TrainingRunCreate, "seed"),
        ("warden demo epochs", TrainingRunCreate, "epochs"),
    ],
)
def test_an_option_the_api_also_takes_has_the_apis_bounds(
    option: str, model: type[BaseModel], field: str
) -> None:
    params = dict(_int_params(typer.main.get_command(app), "warden"))
    assert option in params, sorted(params)
    assert (params[option].min, params[option].max) == _field_bounds(model, field)
