"""The dependency rule (docs: ../shared/ARCHITECTURE.md): entry points -> domains -> foundations.

Walks every import in governance/ and inference/, those inside functions and under
``TYPE_CHECKING`` included, and fails naming each offending import by file and line.
The per-domain ``endpoints``/``cli`` modules are entry points living in their domain's folder.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY = "entry"
# Builds every service; only the app factory and the CLI (the server process included) import it.
WIRING = "governance.runtime"
WIRING_IMPORTERS = ("governance.api.app", "governance.cli.")
ENTRY_PACKAGES = {"api", "cli", "console"}
FOUNDATIONS = {"kit", "errors", "config", "db", "vault", "audit", "logs", "randomness"}
FOUNDATIONS |= {"private_files"}
# Import no domain (other foundations only).
CLOSED = {"kit", "audit", "vault"}
NOT_IN_INFERENCE = ("governance", "fastapi", "starlette", "sqlalchemy")

Edge = tuple[str, str, str]  # importing module, imported module, "file:line"


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports() -> Iterator[Edge]:
    for path in sorted([*ROOT.glob("governance/**/*.py"), *ROOT.glob("inference/**/*.py")]):
        module = module_of(path)
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield module, alias.name, where
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    target = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    target = node.module or ""
                yield module, target, where
                # ``from governance import x`` imports the module x
                for alias in node.names:
                    if is_module(f"{target}.{alias.name}"):
                        yield module, f"{target}.{alias.name}", where


def node_of(module: str) -> str | None:
    """The graph node of a module: its package, or the entry layer for entry points."""
    parts = module.split(".")
    if parts[0] == "inference":
        return "inference"
    if parts[0] != "governance" or len(parts) == 1:
        return None
    if module == WIRING or parts[1] in ENTRY_PACKAGES or parts[-1] == "__main__":
        return ENTRY
    if len(parts) >= 3 and (parts[2] in ("endpoints", "cli") or parts[2].startswith("cli_")):
        return ENTRY
    return parts[1]


EDGES = list(imports())


def package_edges() -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for src, dst, where in EDGES:
        a, b = node_of(src), node_of(dst)
        if a and b and a != b:
            found[(a, b)].append(f"{where} imports {dst}")
    return found


def cycles(edges: dict[tuple[str, str], list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan)."""
    succ: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        succ[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(succ[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            component.append(v)
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(succ):
        if v not in index:
            visit(v)
    return found


def test_no_cycle_between_packages() -> None:
    edges = package_edges()
    problems = []
    for component in cycles(edges):
        problems.append(f"cycle between {', '.join(component)}:")
        for (a, b), where in sorted(edges.items()):
            if a in component and b in component:
                problems += [f"  {a} -> {b}: {w}" for w in where]
    assert not problems, "\n".join(problems)


def test_nothing_below_the_entry_points_imports_them() -> None:
    upward = [
        f"{where} imports {dst}"
        for src, dst, where in EDGES
        if node_of(dst) == ENTRY and node_of(src) not in (ENTRY, None)
    ]
    assert not upward, "\n".join(upward)


def test_foundations_import_no_domain() -> None:
    wrong = [
        f"{where} imports {dst}"
        for src, dst, where in EDGES
        if node_of(src) in CLOSED and node_of(dst) not in (*FOUNDATIONS, None)
    ]
    assert not wrong, "\n".join(wrong)


def test_only_the_entry_points_import_the_wiring_point() -> None:
    wrong = [
        f"{where} imports {dst}"
        for src, dst, where in EDGES
        if (dst == WIRING or dst.startswith(f"{WIRING}."))
        and src != WIRING
        and not any(src == w or src.startswith(w) for w in WIRING_IMPORTERS)
    ]
    assert not wrong, "\n".join(wrong)


def test_inference_is_pure_pytorch() -> None:
    wrong = [
        f"{where} imports {dst}"
        for src, dst, where in EDGES
        if src.split(".")[0] == "inference" and dst.split(".")[0] in NOT_IN_INFERENCE
    ]
    assert not wrong, "\n".join(wrong)


def test_the_walk_sees_imports_inside_functions() -> None:
    # governance/config.py reads the proxy networks through a function-level import.
    assert any(
        src == "governance.config" and dst == "governance.kit.forwarded" for src, dst, _ in EDGES
    )
