"""Subject scopes: per client by default, shared namespaces from policies/subjects.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.records.errors import SubjectScopesError
from governance.records.subjects import SubjectScopes, load_subject_scopes
from governance.vault.blind_index import blind_index, subject_index

KEY = b"k" * 32


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "subjects.yaml").write_text(text, encoding="utf-8")
    return tmp_path


def test_each_client_has_its_own_scope_unless_it_shares_a_namespace() -> None:
    scopes = SubjectScopes({"patients": ["web", "mobile"]})
    assert scopes.scope_of("web") == scopes.scope_of("mobile") == "shared:patients"
    assert scopes.scope_of("partner") == "client:partner"
    assert SubjectScopes().scope_of("web") == "client:web"


def test_scoped_indexes_differ_per_scope_and_from_the_unscoped_one() -> None:
    a = subject_index(KEY, "client:a", "s-1")
    assert a == subject_index(KEY, "client:a", "s-1")
    assert a != subject_index(KEY, "client:b", "s-1")
    assert a != blind_index(KEY, "s-1")
    # The scope is length-prefixed: moving characters between scope and id changes the index.
    assert subject_index(KEY, "client:ab", "c") != subject_index(KEY, "client:a", "bc")
    with pytest.raises(ValueError):
        subject_index(KEY, "client:a", "")
    with pytest.raises(ValueError):
        subject_index(KEY, "client:a", "x\udc80")


def test_the_shipped_file_shares_nothing(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "policies"
    assert load_subject_scopes(shipped).namespaces == {}
    assert load_subject_scopes(tmp_path).namespaces == {}  # no file: no namespace


def test_a_file_naming_a_namespace_is_read(tmp_path: Path) -> None:
    scopes = load_subject_scopes(
        _write(tmp_path, "format: warden.subjects/1\nshared:\n  p:\n    clients: [a, b]\n")
    )
    assert scopes.namespaces == {"p": ("a", "b")}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("shared: {}\n", "'format' must be"),
        ("format: warden.subjects/1\nshared: [a]\n", "'shared' must be a mapping"),
        (
            "format: warden.subjects/1\nshared:\n  a:\n    clients: [x]\n  b:\n    clients: [x]\n",
            "in two namespaces",
        ),
        ("format: warden.subjects/1\nshared:\n  a:\n    clients: []\n", "non-empty list"),
        ("format: warden.subjects/1\nshared:\n  'a b':\n    clients: [x]\n", "a name is"),
        ("format: warden.subjects/1\nsharde: {}\n", "unknown keys"),
        ("format: [\n", "not valid YAML"),
    ],
)
def test_a_broken_file_is_refused_with_its_problem(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(SubjectScopesError, match=problem):
        load_subject_scopes(_write(tmp_path, text))
