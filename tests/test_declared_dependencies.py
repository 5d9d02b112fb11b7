"""Every library the code or the tests import is declared in ``pyproject.toml``.

A library that arrives only as another's dependency disappears when that one changes its own
(the OIDC test provider ran on the Werkzeug that schemathesis happens to bring). The product
may use what ``dependencies`` (and, behind its switch, the ``tracing`` extra) declares; the
tests, benchmarks and scripts also what the ``dev`` extra declares.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest

from tests.conftest import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
OURS = {"governance", "inference", "tests", "bench"}
# Not a distribution: a test helper module its folder puts on sys.path, a library a test checks
# is absent (secure mode must refuse without it), the benchmarks' shared module, and setuptools,
# which only the wheel's build (``[build-system] requires``) imports.
NOT_DEPENDENCIES = {"inference_factories", "torchcsprng", "_common", "setuptools"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _declared(*extras: str) -> set[str]:
    found = {_name(r) for r in PROJECT["dependencies"]}
    for extra in extras:
        found |= {_name(r) for r in PROJECT["optional-dependencies"][extra]}
    return found


def _imported(folders: Iterable[str]) -> dict[str, Path]:
    """Top-level modules imported anywhere under ``folders`` (in functions too), with a file."""
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], path)
    return found


def _undeclared(folders: Iterable[str], declared: set[str]) -> list[str]:
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module, path in sorted(_imported(folders).items()):
        if module in sys.stdlib_module_names or module in OURS | NOT_DEPENDENCIES:
            continue
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
        if not names & declared:
            missing.append(f"{module} ({path.relative_to(REPO)}; from {sorted(names) or '?'})")
    return missing


@pytest.mark.parametrize(
    ("folders", "extras"),
    [
        (("governance", "inference"), ("tracing",)),
        (("tests", "bench", "scripts"), ("tracing", "dev")),
    ],
    ids=["product", "tests"],
)
def test_every_imported_library_is_declared(
    folders: tuple[str, ...], extras: tuple[str, ...]
) -> None:
    assert _undeclared(folders, _declared(*extras)) == []
