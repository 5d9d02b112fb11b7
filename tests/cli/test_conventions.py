"""``warden``'s conventions: one-line errors, "run `warden init`", exit codes, --json, help.

Every command is walked, as tests/test_cli_integer_bounds.py walks them, so that a command
added later follows the same conventions or fails here.
"""

from __future__ import annotations

import inspect
import json
import os
import pty
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from governance.audit.errors import AuditVerificationError
from governance.cli.common import NO_DATABASE, ExitCode, exit_code_of
from governance.cli.help import tidy
from governance.cli.lazy import Lazy, LazyGroup
from governance.cli.main import app
from governance.cli.remote_tree import remote_root
from governance.config import Settings
from governance.errors import Conflict, WardenError
from governance.fairness.errors import GateRefused
from governance.policy.errors import PolicyTestsFailed
from governance.privacy.ledger import BudgetExceeded
from tests.conftest import BACKENDS, REPO, _pg_exec, _pg_url, settings_env

# Commands that need no Warden database: they create one, run one, check files offline, or
# manage the remote CLI's sign-in.
NO_DATABASE_NEEDED = {
    "init",
    "login",
    "logout",
    "whoami",
    "serve",
    "demo",
    "audit verify-bundle",
    "report verify",
    "witness init",
    "witness vkey",
    "witness serve",
    "witness cosign",
}
# Commands that check the files they are given before opening the database: an empty file
# is refused first (in one line all the same).
INPUT_CHECKED_FIRST = {"models import", "fairness thresholds set", "datasets register"}
# Required, though not in typer's sense (the older positional spelling stands in for it).
EXTRA_ARGS = {"fairness override": ["--version", "1"], "models promote": ["--version", "1"]}

runner = CliRunner()


def _leaves(command: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    subs = getattr(command, "commands", None)
    if subs:
        for name, sub in subs.items():
            yield from _leaves(sub, f"{path} {name}".strip())
    else:
        yield path, command


ROOT = typer.main.get_command(app)
COMMANDS = dict(_leaves(ROOT))


def _dummy_args(command: Any, tmp_path: Path) -> list[str]:
    """Values for the required parameters: enough to get past parsing."""
    args: list[str] = []
    for param in command.params:
        if not param.required:
            continue
        annotation = param.type_descriptor.annotation
        if annotation is int:
            value = "1"
        elif annotation is datetime or param.name.startswith("period_"):
            value = "2026-01-01"
        elif annotation is Path:
            value = str(tmp_path / "empty-file")
        else:
            value = "x"
        if param.param_type_name == "option":
            args += [param.opts[0], value]
        else:
            args.append(value)
    return args


@pytest.fixture(params=BACKENDS)
def uninitialised(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a deployment `warden init` has not run for: an SQLite path with no
    file, or a PostgreSQL database without Warden's tables."""
    env = {"WARDEN_DATA_DIR": str(tmp_path / "var"), "WARDEN_DATABASE_URL": ""}
    if request.param == "sqlite":
        yield env
        return
    name = f"warden_empty_{uuid.uuid4().hex[:12]}"
    _pg_exec(f'CREATE DATABASE "{name}"')
    try:
        yield {**env, "WARDEN_DATABASE_URL": _pg_url(name)}
    finally:
        _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_before_init_every_command_says_run_init(
    uninitialised: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "empty-file").touch()
    checked = []
    for path, command in COMMANDS.items():
        if path in NO_DATABASE_NEEDED:
            continue
        args = [*path.split(), *_dummy_args(command, tmp_path), *EXTRA_ARGS.get(path, [])]
        result = runner.invoke(app, args, env=uninitialised)
        said = " ".join(result.output.split())
        assert result.exit_code == ExitCode.ERROR, (args, result.output)
        assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
        assert said.startswith("error:") and said.count("error:") == 1, (args, said)
        if path not in INPUT_CHECKED_FIRST:
            assert "run `warden init`" in said, (args, said)
        checked.append(path)
    assert len(checked) >= 50
    # Nothing was created on the way: no empty database to be mistaken for one.
    assert not (tmp_path / "var" / "warden.db").exists()
    result = runner.invoke(app, ["models", "list"], env=uninitialised)
    assert NO_DATABASE in " ".join(result.output.split())


def test_an_unreachable_database_is_one_line_without_its_password(tmp_path: Path) -> None:
    env = {
        "WARDEN_DATA_DIR": str(tmp_path),
        "WARDEN_DATABASE_URL": "postgresql://warden:hunter2-secret@127.0.0.1:1/warden",
    }
    result = runner.invoke(app, ["principals", "list"], env=env)
    assert result.exit_code == ExitCode.ERROR, result.output
    assert "error: the database is unavailable:" in " ".join(result.output.split())
    assert "hunter2" not in result.output and "Traceback" not in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("warden 0."), result.output


def test_help_shows_no_placeholders_or_column_bounds() -> None:
    # Direct mode, then remote mode (a server named, nobody signed in: help needs neither).
    remote = {"COLUMNS": "200", "WARDEN_SERVER": "http://127.0.0.1:9"}
    runs = [(path, {"COLUMNS": "200"}) for path in ["", *COMMANDS]]
    runs += [(path, remote) for path in ["", *dict(_leaves(remote_root()))]]
    for path, env in runs:
        result = runner.invoke(app, [*path.split(), "--help"], env=env)
        assert result.exit_code == 0, (path, result.output)
        for internal in ("<bool>", "<int range>", "2147483647", "9223372036854775807"):
            assert internal not in result.output, (path, internal, result.output)
    # A bound a person chooses within is still shown.
    out = runner.invoke(app, ["fairness", "audit", "--help"], env={"COLUMNS": "200"}).output
    assert "0<=x<=2000" in out


def _every_command(command: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _every_command(sub, f"{path} {name}".strip())


def test_a_listing_shows_each_command_in_unbroken_lines() -> None:
    # A group lists the first paragraph of each command's help, with its line breaks.
    for tree in (ROOT, remote_root()):
        tidy(tree)
        for path, command in _every_command(tree):
            listed = command.short_help or inspect.cleandoc(command.help or "").split("\n\n")[0]
            assert "\n" not in listed, (path, listed)


def _lazy_entries(group: type[LazyGroup]) -> Iterator[tuple[str, Lazy]]:
    for sub in group.__subclasses__():
        yield from sub.lazy.items()
        yield from _lazy_entries(sub)


remote_root()  # defines the remote tree's lazy groups
LAZY = sorted(set(_lazy_entries(LazyGroup)), key=lambda entry: (entry[1].module, entry[0]))


@pytest.mark.parametrize(("name", "entry"), LAZY, ids=[name for name, _ in LAZY])
def test_a_lazy_command_is_listed_with_its_own_help(name: str, entry: Lazy) -> None:
    # Listings show the help written beside the module's name, before it is imported.
    command = entry.load(name)
    assert command is not None and command.name == name
    assert " ".join(entry.help.split()) == " ".join((command.help or "").split())


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (GateRefused("fails the fairness gate"), ExitCode.REFUSED),
        (BudgetExceeded("over its cap"), ExitCode.REFUSED),
        (PolicyTestsFailed([], total=0), ExitCode.REFUSED),
        (AuditVerificationError("bad signature"), ExitCode.VERIFICATION_FAILED),
        (Conflict("a plain conflict"), ExitCode.ERROR),
        (WardenError("anything else"), ExitCode.ERROR),
    ],
)
def test_exit_codes(error: WardenError, code: ExitCode) -> None:
    assert exit_code_of(error) == code


@pytest.fixture
def env(settings: Settings, admin_token: str) -> dict[str, str]:
    """An initialised deployment (migrated database, keys, the first admin)."""
    return settings_env(settings)


def test_messages_keep_their_brackets_and_versions_take_one_style(env: dict[str, str]) -> None:
    pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z"
    result = runner.invoke(app, ["fairness", "gate", "nope", "--version", pattern], env=env)
    assert result.exit_code == ExitCode.ERROR
    # Rich markup would have eaten both bracket expressions.
    assert "'^[A-Za-z0-9][A-Za-z0-9._-]{0,63}" in result.output, result.output
    # The older positional spelling still works; two different versions are a usage error.
    result = runner.invoke(app, ["fairness", "gate", "nope", "1"], env=env)
    assert result.exit_code == ExitCode.ERROR and "'nope' version '1'" in result.output
    result = runner.invoke(app, ["fairness", "gate", "nope", "1", "--version", "2"], env=env)
    assert result.exit_code == ExitCode.USAGE, result.output


def test_a_bad_role_lists_the_valid_ones(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["roles", "grant", "admin", "wizard", "--reason", "r"], env=env)
    said = " ".join(result.output.split())
    assert result.exit_code == ExitCode.ERROR, said
    assert "unknown role 'role:wizard'" in said and "auditor" in said and "client" in said


def test_lists_have_headers_json_and_an_empty_message(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["principals", "list"], env=env)
    assert result.exit_code == 0 and "name" in result.output and "admin" in result.output
    listed = json.loads(runner.invoke(app, ["principals", "list", "--json"], env=env).output)
    assert [p["name"] for p in listed] == ["admin"]
    for args, empty in [
        (["fairness", "audits"], "no fairness audits yet"),
        (["records", "list"], "no records"),
        (["privacy", "runs"], "no training runs"),
        (["vault", "rotations"], "no key rotations yet"),
        (["vault", "keys"], "no data keys"),
        (["models", "list"], "no models registered"),
    ]:
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0 and result.output.strip() == empty, (args, result.output)
        result = runner.invoke(app, [*args, "--json"], env=env)
        assert json.loads(result.output) == [], (args, result.output)
    kek = json.loads(runner.invoke(app, ["vault", "kek", "--json"], env=env).output)
    assert kek["current"] in kek["available"] and kek["live_data_keys"] == {}
    shown = json.loads(
        runner.invoke(app, ["fairness", "thresholds", "show", "--json"], env=env).output
    )
    assert shown["version"] == 1 and "defaults" in shown["document"]
    history = runner.invoke(app, ["fairness", "thresholds", "history", "--json"], env=env)
    assert [v["version"] for v in json.loads(history.output)] == [1]


def test_init_prints_json_and_the_log_verifies_at_once(uninitialised: dict[str, str]) -> None:
    result = runner.invoke(app, ["init", "--officer", "olivia", "--json"], env=uninitialised)
    assert result.exit_code == 0, result.output
    done = json.loads(result.output)
    assert done["admin"] == "admin" and done["admin_token"] and done["officer_code"]
    result = runner.invoke(app, ["audit", "verify", "--json"], env=uninitialised)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["entries"] == json.loads(result.output)["latest_checkpoint"]


def _report_with_stderr_on_a_terminal(env: dict[str, str]) -> tuple[str, bytes]:
    """Run `warden report` in a subprocess, stdout into a pipe and stderr on a pseudo-terminal:
    its stdout and everything drawn on the terminal."""
    command = [sys.executable, "-m", "governance.cli.main", "report", "--from", "2000-01-01"]
    main, side = pty.openpty()
    try:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env={**env, "TERM": "xterm-256color", "COLUMNS": "120"},
            stdout=subprocess.PIPE,
            stderr=side,
            stdin=subprocess.DEVNULL,
        )
        os.close(side)
        drawn = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the other end is closed: the command has ended
                break
            if not chunk:
                break
            drawn += chunk
        stdout, _ = process.communicate(timeout=120)
    finally:
        os.close(main)
    assert process.returncode == 0, drawn
    return stdout.decode(), drawn


def test_report_generation_shows_progress_on_a_terminal_only(env: dict[str, str]) -> None:
    if env["WARDEN_DATABASE_URL"].startswith("postgresql"):
        pytest.skip("what is drawn where does not depend on the database (run on SQLite)")
    stdout, drawn = _report_with_stderr_on_a_terminal(env)
    assert b"building the report" in drawn, drawn
    # The spinner is drawn on stderr: stdout is the report's summary alone.
    assert stdout.startswith("report ") and "\x1b" not in stdout and "building" not in stdout
    # Not on a terminal (a pipe, a log file): no spinner frames at all.
    result = runner.invoke(app, ["report", "--from", "2000-01-01"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("report ") and "building" not in result.output
