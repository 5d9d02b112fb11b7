"""The readable values the report's templates print: no JSON, no cut text, numbers as a reader
expects them. Pure functions and templates; no deployment."""

from __future__ import annotations

import re

from governance.reports.layout import (
    environment,
    interval,
    rate,
    readable,
    rules,
    seqs,
    short,
    when,
)

JSON_LITERAL = re.compile(r'\{\s*"|"\s*:\s*[\[{"\d]')


def test_rates_intervals_times_and_sequences() -> None:
    assert rate(0.07444321261234) == "0.074" and rate(None) == "—" and rate(3) == "3"
    assert interval({"low": 0.0744432126, "high": 0.1}) == "[0.074, 0.100]"
    assert interval({"low": None, "high": None}) == "—" and interval(None) == "—"
    assert when("2026-01-31T14:05:09.123456+00:00") == "2026-01-31 14:05:09 UTC"
    assert seqs([9, 3, 4, 5, 7, 12, 13]) == "3–5, 7, 9, 12–13"
    long = seqs(list(range(0, 100, 2)))
    assert long.endswith("(50 entries)") and "…" in long


def test_hashes_shorten_with_the_full_value_kept() -> None:
    digest = "ab" * 32
    cut = str(short(digest))
    assert f'title="{digest}"' in cut and "…" in cut and len(re.sub(r"<[^>]+>", "", cut)) < 20
    # In a key/value table the hash prints whole; in a row it is shortened.
    assert digest in re.sub(r"<[^>]+>", "", str(readable({"sha256": digest})))
    assert digest not in re.sub(r"<[^>]+>", "", str(readable([{"sha256": digest}])))


def test_any_json_value_reads_without_json_and_is_escaped() -> None:
    value = {
        "ci": {"low": 0.412345, "high": 0.53},
        "failures": [
            {"feature": "sex", "measure": "ratio", "reason": "x" * 900, "value": 0.7},
            {"feature": "race", "measure": "ratio", "reason": "<script>", "value": None},
        ],
        "nested": {"deeper": {"list": ["a", "b"], "when": "2026-01-31T14:05:09+00:00"}},
        "seqs": [1, 2, 3, 10],
        "rules": [["p", "role:a", "api:x", "read", "allow"]],
        "wide": [{f"k{i}": i for i in range(9)}],
        "empty": [],
    }
    out = str(readable(value))
    text = re.sub(r"<[^>]+>", " ", out)
    assert not JSON_LITERAL.search(text)
    assert "[0.412, 0.530]" in text and "1–3, 10" in text and "2026-01-31 14:05:09 UTC" in text
    assert "x" * 900 in text  # long text wraps, it is never cut
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert 'class="cards"' in out  # nine columns are drawn as a card per item


def test_policy_rules_are_grouped_by_subject_and_role() -> None:
    out = str(
        rules(
            [
                ["p", "role:admin", "api:keys", "issue", "allow"],
                ["p", "role:admin", "api:keys", "read", "allow"],
                ["p", "role:client", "api:policy", "write", "deny"],
                ["g", "alice", "role:admin"],
                ["g", "bob", "role:admin"],
            ]
        )
    )
    assert "<code>api:keys</code>: issue, read" in out
    assert "<code>alice</code>, <code>bob</code>" in out and ">deny<" in out


def test_a_section_without_a_template_renders_generically() -> None:
    template = environment().get_template("sections/_generic.html.j2")
    html = template.render(
        data={
            "controller": "ACME",
            "purposes": ["credit scoring", "fraud"],
            "items": [{"ref": "Art. 30", "status": "gap", "evidence": ["/summary"]}],
            "documents": {"dpia": "DPIA-2026-01"},
        },
        doc={},
        meta={},
    )
    text = re.sub(r"<[^>]+>", " ", html)
    assert "ACME" in text and "credit scoring, fraud" in text and "DPIA-2026-01" in text
    assert "Items (1)" in text and not JSON_LITERAL.search(text)
    assert 'href="#sec-summary"' in html
