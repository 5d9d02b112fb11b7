"""`warden demo` runs the whole story end to end (the README's main-job command)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from governance.cli.demo import run_demo

pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_story(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings a user may have exported are ignored, and said to be: init and the demo's server
    # once disagreed on where the key file was.
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("WARDEN_DATABASE_URL", f"sqlite:///{elsewhere / 'other.db'}")
    monkeypatch.setenv("WARDEN_KEY_FILE", str(elsewhere / "other-keys.json"))
    lines: list[str] = []
    result = run_demo(
        root=tmp_path / "demo", reports_dir=tmp_path / "reports", epochs=2, say=lines.append
    )
    assert not elsewhere.exists()
    assert any("ignoring WARDEN_DATABASE_URL, WARDEN_KEY_FILE" in line for line in lines)
    titles = [s.title for s in result.steps]
    assert titles == [
        "init",
        "people",
        "DP training",
        "bias audit",
        "gate",
        "mitigation",
        "approval",
        "serve",
        "predictions",
        "policy edit",
        "keys and erasure",
        "report",
    ]
    assert result.numbers["dp_epsilon"] <= 1.0
    # The mitigation is a charged release: the served version claims the composed ε.
    assert 1.0 < result.numbers["dp_epsilon_mitigated"] < 1.5
    assert result.numbers["dp_ratio_before"] < 0.8 <= result.numbers["dp_ratio_after"]
    assert result.report_dir is not None
    names = {p.name for p in result.report_dir.iterdir()}
    assert {"report.json", "report.html", "report.pdf", "manifest.json"} <= names
    report = json.loads((result.report_dir / "report.json").read_text())
    assert report["meta"]["id"] == result.report_dir.name
    adult = next(d for d in report["privacy"]["datasets"] if d["dataset"] == "adult")
    spent = adult["spent_epsilon"]
    assert spent == pytest.approx(result.numbers["dp_epsilon_mitigated"], rel=0.05)
    assert spent <= adult["cap_epsilon"]
    # The demo stops its server: nothing is left listening.
    log = (tmp_path / "demo" / "server.log").read_text()
    assert "unhandled" not in log
