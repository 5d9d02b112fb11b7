"""The issue's acceptance checks on a real model: an MLP trained on Adult.

It fails the four-fifths rule by sex, so the gate blocks it; ThresholdOptimizer mitigation
produces a new version that improves the ratio, carries its trade-off plot, and is audited and
served through the same code path as any other version.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from governance.config import Settings
from governance.fairness.errors import GateRefused
from governance.fairness.gate import fairness_gate
from governance.fairness.mitigation.new_version import NUMBERS_FILE, PLOT_FILE, mitigator
from governance.fairness.service import fairness
from governance.kit.context import Context
from governance.registry.service import _gates, registry
from inference.artifact import read_manifest

pytestmark = pytest.mark.slow


def test_importing_the_gate_module_registers_it() -> None:
    # The app (via fairness.endpoints) and the CLI (via fairness.cli) import it the same way.
    assert fairness_gate in _gates


def _register(sessions: sessionmaker[Session], settings: Settings, ctx: Context, src: Path) -> None:
    with sessions.begin() as session:
        registry.register(
            session,
            ctx,
            source_dir=src,
            models_dir=settings.resolved_models_dir,
            trained_by="tom-trainer",
        )


def test_the_adult_mlp_fails_the_four_fifths_rule_by_sex_and_is_blocked(
    sessions: sessionmaker[Session], settings: Settings, adult_mlp: Path, engineer: Context
) -> None:
    _register(sessions, settings, engineer, adult_mlp)
    with sessions.begin() as session:
        audit = fairness.audit_model(
            session, engineer, model="adult-mlp", sensitive=["sex"], bootstrap=100
        )
        result = json.loads(audit.result)
    ratio = result["audits"][0]["disparities"]["demographic_parity_ratio"]
    assert ratio["value"] < 0.8
    assert ratio["ci"]["high"] < 0.8  # not a sampling accident: the whole interval fails
    with pytest.raises(GateRefused) as refused, sessions.begin() as session:
        registry.promote(session, engineer, name="adult-mlp", version="1")
    failing = {(f["feature"], f["measure"]) for f in refused.value.extra["failures"]}
    assert ("sex", "demographic_parity_ratio") in failing


def test_mitigation_makes_a_new_version_that_improves_the_ratio(
    sessions: sessionmaker[Session],
    settings: Settings,
    adult_mlp: Path,
    engineer: Context,
    officer: Context,
) -> None:
    _register(sessions, settings, engineer, adult_mlp)
    with sessions.begin() as session:
        out = mitigator.mitigate(
            session,
            officer,
            model="adult-mlp",
            sensitive="sex",
            models_dir=settings.resolved_models_dir,
        )
        new_dir, new_sha = Path(out.version.artifact_dir), out.version.artifact_sha256
        assert out.version.version == "1-mitigated"
        assert out.version.trained_by == "tom-trainer"
    before, after = out.tradeoff["before"], out.tradeoff["after"]
    assert before["demographic_parity_ratio"] < 0.8 <= after["demographic_parity_ratio"]
    assert after["accuracy"] > before["accuracy"] - 0.05  # a bounded cost in accuracy

    # The plot and numbers are hashed files of the new artifact, which verifies as a whole.
    manifest = read_manifest(new_dir, expected_sha256=new_sha)
    png = (new_dir / PLOT_FILE).read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png == out.plot_png
    assert manifest.files[PLOT_FILE] == hashlib.sha256(png).hexdigest()
    assert json.loads((new_dir / NUMBERS_FILE).read_text())["tradeoff"] == out.tradeoff
    assert manifest.postprocessing is not None and manifest.postprocessing["feature"] == "sex"
    assert manifest.training["mitigation"]["fit_split"] == "train"

    # Audited through the serving path, the new version shows the ratio the mitigation reported.
    with sessions.begin() as session:
        audit = fairness.audit_model(
            session,
            engineer,
            model="adult-mlp",
            version="1-mitigated",
            sensitive=["sex"],
            bootstrap=0,
        )
        result = json.loads(audit.result)
        assert audit.artifact_sha256 == new_sha
    measured = result["audits"][0]["disparities"]["demographic_parity_ratio"]["value"]
    assert measured == pytest.approx(after["demographic_parity_ratio"], abs=1e-12)
    assert result["overall"]["accuracy"] == pytest.approx(after["accuracy"], abs=1e-12)
