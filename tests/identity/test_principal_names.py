"""Principal names are exactly the documented form: no trailing newline slips through.

``re.match`` with a pattern ending in ``$`` also matches before a final newline, so ``"bob\\n"``
was accepted as a principal distinct from ``"bob"`` (the two print alike in listings and
reports). Anchored patterns end in ``\\Z``; the second test keeps it so across the code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.conftest import auth

ROOT = Path(__file__).resolve().parents[2]


def test_a_name_with_a_trailing_newline_is_refused(app_client: Any, admin_token: str) -> None:
    for name in ("bob\n", "bob\r\n", "\nbob"):
        r = app_client.post(
            "/v1/principals", json={"name": name, "kind": "user"}, headers=auth(admin_token)
        )
        assert r.status_code == 422, (name, r.text)
    names = [p["name"] for p in app_client.get("/v1/principals", headers=auth(admin_token)).json()]
    assert not any(n.strip() != n for n in names), names


def test_no_anchored_pattern_ends_in_a_bare_dollar() -> None:
    compiled = re.compile(r"""re\.compile\(r?["'](\^[^"']*)\$["']""")
    offenders = [
        f"{path.relative_to(ROOT)}: {m.group(1)}$"
        for folder in ("governance", "inference")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for m in compiled.finditer(path.read_text())
    ]
    assert not offenders, "anchor these with \\Z:\n" + "\n".join(offenders)
