"""``policies/limits.yaml``: the shipped file, and a broken one stopping init and the start."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.bootstrap import initialize
from governance.config import REPO_ROOT, Settings
from governance.errors import ConfigurationError
from governance.limits import LimitsPolicyError, load_limits
from governance.runtime import Runtime
from tests.factories import policies_copy

GOOD = """\
format: warden.limits/1
failed_auth: {requests: 5, per_seconds: 60}
predict: {requests: 100, per_seconds: 1}
jobs:
  requests: 2
  per_seconds: 3600
  actions: [api:training train]
"""

BROKEN = [
    (None, "cannot read"),
    (": : :\n", "is not valid YAML"),
    (b"format: \xff\n", "is not UTF-8 text"),
    ("- a list\n", "must be a mapping"),
    (GOOD.replace("warden.limits/1", "warden.limits/2"), "'format' must be"),
    (GOOD.replace("requests: 5", "requests: 0"), r"'failed_auth.requests' must be a whole"),
    (GOOD.replace("requests: 5", "requests: true"), r"'failed_auth.requests' must be a whole"),
    (GOOD.replace("per_seconds: 3600", "per_seconds: 1.5"), "'jobs.per_seconds' must be"),
    (GOOD.replace("per_seconds: 3600", "per_seconds: 999999"), "'jobs.per_seconds' must be"),
    (GOOD.replace("predict: {requests: 100, per_seconds: 1}\n", ""), "'predict' must be"),
    (GOOD.replace("[api:training train]", "[api:training]"), "is not '<object> <action>'"),
    (GOOD.replace("[api:training train]", "[]"), "'jobs.actions' must be a non-empty list"),
    (GOOD + "burst: 3\n", r"unknown keys \['burst'\]"),
    (GOOD.replace("per_seconds: 60}", "per_seconds: 60, per_day: 1}"), "unknown keys"),
]


def test_the_shipped_limits() -> None:
    limits = load_limits(REPO_ROOT / "policies")
    assert (limits.failed_auth.requests, limits.failed_auth.per_seconds) == (100, 60)
    assert ("api:training", "train") in limits.job_actions
    assert ("api:audit", "export") in limits.job_actions


def test_a_good_file(tmp_path: Path) -> None:
    limits = load_limits(policies_copy(tmp_path, limits_yaml=GOOD))
    assert (limits.predict.requests, limits.predict.per_seconds) == (100, 1)
    assert (limits.jobs.requests, limits.jobs.per_seconds) == (2, 3600)
    assert limits.job_actions == frozenset({("api:training", "train")})


@pytest.mark.parametrize(("body", "problem"), BROKEN)
def test_a_broken_file_is_refused_with_its_problem(
    tmp_path: Path, body: str | bytes | None, problem: str
) -> None:
    with pytest.raises(LimitsPolicyError, match=problem) as caught:
        load_limits(policies_copy(tmp_path, limits_yaml=body))
    assert isinstance(caught.value, ConfigurationError)


def test_the_server_refuses_to_start_with_a_broken_file(
    settings: Settings, admin_token: str, tmp_path: Path
) -> None:
    policies = policies_copy(tmp_path, limits_yaml=GOOD.replace("requests: 5", "requests: -1"))
    with pytest.raises(ConfigurationError, match=r"failed_auth\.requests"):
        Runtime(settings.model_copy(update={"policies_dir": policies}))


def test_init_writes_nothing_with_it(settings: Settings, tmp_path: Path) -> None:
    fresh = settings.model_copy(
        update={
            "policies_dir": policies_copy(tmp_path, limits_yaml="format: x\n"),
            "data_dir": tmp_path / "fresh",
        }
    )
    with pytest.raises(
        ConfigurationError, match=r"limits\.yaml is invalid.*refusing to initialize"
    ):
        initialize(fresh)
    assert not fresh.data_dir.exists()
