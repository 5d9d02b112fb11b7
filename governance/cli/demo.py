"""``warden demo``: the whole story, with real calls, on the embedded defaults.

It initialises a fresh Warden under ``var/demo`` (SQLite, a local key file, the bundled Adult
data), starts a real ``warden serve`` process on a free local port, and drives it over HTTP the
way each kind of user would: the ML engineer trains and audits, the admin tries to promote, the
compliance officer approves and edits the policy, client applications predict, the auditor
exports and verifies. The server is stopped at the end: the demo leaves nothing running.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic_settings import SettingsConfigDict

from governance.bootstrap import InitResult, initialize
from governance.cli.server_process import ServerProcess
from governance.config import Settings
from governance.kit.http import client as http_client

Say = Callable[[str], None]


class DemoError(RuntimeError):
    """A step of the demo did not go as the story says."""


@dataclass
class Step:
    title: str
    detail: str


@dataclass
class DemoResult:
    data_dir: Path
    report_dir: Path | None = None
    artifact_dirs: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)


class _DemoSettings(Settings):
    """Settings from arguments alone: an environment prefix that nothing sets."""

    model_config = SettingsConfigDict(env_prefix="WARDEN_DEMO_IGNORES_", extra="ignore")


class _Api:
    def __init__(self, url: str) -> None:
        self.http = http_client(base_url=url, timeout=600)

    def call(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        expect: int | tuple[int, ...] = 200,
        **kw: Any,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        r = self.http.request(method, path, headers=headers, **kw)
        wanted = (expect,) if isinstance(expect, int) else expect
        if r.status_code not in wanted:
            raise DemoError(
                f"{method} {path} answered {r.status_code}, expected {wanted}: {r.text[:500]}"
            )
        return r


def _disparity(audit: dict[str, Any], feature: str, measure: str) -> float | None:
    for item in audit["result"]["audits"]:
        if item["name"] == feature:
            found = item["disparities"].get(measure)
            return None if found is None else found["value"]
    return None


def run_demo(
    *,
    root: Path | None = None,
    reports_dir: Path | None = None,
    epochs: int = 10,
    say: Say = print,
    keep: bool = False,
) -> DemoResult:
    """Run the story end to end.

    Args:
        root: the working folder (default ``var/demo``); it is wiped first.
        reports_dir: where the report goes (default ``audit_reports/``).
        epochs: DP training epochs (fewer is faster and less accurate).
        say: where progress lines go.
        keep: leave the server running (its URL is printed) instead of stopping it.

    Returns:
        What was done and where it was written.

    Raises:
        DemoError: a step did not behave as the story expects.
    """
    root = (root or Path("var/demo")).resolve()
    if root.exists():
        shutil.rmtree(root)
    reports_dir = (reports_dir or Settings.model_fields["reports_dir"].default).resolve()
    # The demo is self-contained: it ignores every WARDEN_* setting, in its own process and
    # in the server it starts, so that init and the server can never disagree on a path.
    ignored = sorted(k for k in os.environ if k.startswith("WARDEN_"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(WARDEN_DATA_DIR=str(root), WARDEN_REPORTS_DIR=str(reports_dir))
    settings: Settings = _DemoSettings(data_dir=root, reports_dir=reports_dir)
    result = DemoResult(data_dir=root)

    def step(title: str, detail: str) -> None:
        result.steps.append(Step(title, detail))
        say(f"  ✓ {title}: {detail}")

    say(f"Warden demo in {root}")
    if ignored:
        say(f"  (ignoring {', '.join(ignored)}: the demo runs on its own SQLite and key file)")
    init = initialize(settings, officer_name="olivia")
    step(
        "init",
        f"SQLite {settings.resolved_database_url}, key file 0600, admin key issued, "
        f"log key {init.vkey.split('+')[0]}",
    )
    try:
        server = ServerProcess(env, root / "server.log").start()
    except RuntimeError as exc:
        raise DemoError(str(exc)) from None
    try:
        assert init.officer_code is not None
        _story(_Api(server.url), init, settings, epochs, step, result)
    finally:
        if keep:
            pid = server.proc.pid if server.proc else "?"
            say(f"server left running at {server.url} (pid {pid})")
        else:
            server.stop()
    return result


def _story(
    api: _Api,
    init: InitResult,
    settings: Settings,
    epochs: int,
    step: Callable[[str, str], None],
    result: DemoResult,
) -> None:
    admin = init.admin_token
    # The first compliance officer was appointed by `warden init`; she redeems her own code.
    tokens = {
        "olivia": api.call(
            "POST", "/v1/enrol", None, json={"code": init.officer_code}, expect=201
        ).json()["token"]
    }
    people = {
        "eli": ("user", ["ml_engineer"]),
        "ada": ("user", ["auditor"]),
        "loan-app": ("service", ["client"]),
        "marketing-app": ("service", ["client"]),
    }
    approved = []
    for name, (kind, roles) in people.items():
        api.call("POST", "/v1/principals", admin, json={"name": name, "kind": kind}, expect=201)
        for role in roles:
            granted = api.call(
                "POST",
                "/v1/roles/grant",
                admin,
                json={"principal": name, "role": role, "reason": f"onboarding {name} as {role}"},
                expect=(200, 202),
            ).json()
            if granted["status"] == "pending":
                # The auditor role reads the whole audit log: an officer approves the grant.
                api.call(
                    "POST",
                    f"/v1/policy/proposals/{granted['proposal']}/approve",
                    tokens["olivia"],
                    json={"reason": f"{name} is on the audit team's roster"},
                    expect=201,
                )
                approved.append(f"{name} as {role}")
        if kind == "service":
            tokens[name] = api.call(
                "POST", "/v1/keys", admin, json={"principal": name}, expect=201
            ).json()["token"]
        else:
            code = api.call("POST", f"/v1/principals/{name}/enrolment", admin, expect=201).json()[
                "code"
            ]
            tokens[name] = api.call(
                "POST", "/v1/enrol", None, json={"code": code}, expect=201
            ).json()["token"]
    step(
        "people",
        "compliance officer olivia (appointed by init), ML engineer eli and auditor ada enrol "
        "with one-time codes and obtain their own keys; the admin issues keys to the client "
        f"services loan-app and marketing-app; olivia approved {', '.join(approved)}",
    )

    run = api.call(
        "POST",
        "/v1/training/runs",
        tokens["eli"],
        expect=201,
        json={
            "dataset": "adult",
            "model": "mlp",
            "epsilon": 1.0,
            "delta": 1e-5,
            "epochs": epochs,
            "seed": 7,
            "name": "adult-mlp",
            "version": "v1",
        },
    ).json()
    result.numbers["dp_epsilon"] = run["epsilon"]
    result.numbers["test_accuracy"] = run["test_accuracy"]
    ledger = api.call("GET", "/v1/privacy/ledger/adult", tokens["eli"]).json()
    # The registry's claim comes from the ledger and names the accountant that gave the ε.
    trained_claim = api.call(
        "GET", "/v1/models/adult-mlp", tokens["eli"], params={"version": "v1"}
    ).json()["dp_claim"]
    if trained_claim["epsilon"] is None:
        raise DemoError(f"the DP-trained model has no DP claim: {trained_claim['statement']}")
    step(
        "DP training",
        f"MLP on Adult, ε = {trained_claim['epsilon']:.3f} (target 1, δ = 1e-5, "
        f"{trained_claim['accountant'].upper()} accountant: the smaller of PRV and PLD), test "
        f"accuracy {run['test_accuracy']:.2%}; adult's budget: ε "
        f"{ledger['epsilon_recomposed']:.3f} spent ({ledger['accountant'].upper()}, "
        f"recomposed; naive sum "
        f"{ledger['epsilon_naive']:.3f}) of a cap of {ledger['cap']['epsilon']}",
    )

    audit = api.call(
        "POST",
        "/v1/fairness/audits",
        tokens["eli"],
        expect=201,
        json={
            "model": "adult-mlp",
            "version": "v1",
            "dataset": "adult",
            "sensitive": ["sex", "race"],
            "bootstrap": 100,
        },
    ).json()
    ratio = _disparity(audit, "sex", "demographic_parity_ratio")
    result.numbers["dp_ratio_before"] = ratio
    if audit["passed"]:
        raise DemoError("the unmitigated Adult MLP unexpectedly passed the four-fifths rule")
    step(
        "bias audit",
        f"demographic parity ratio by sex {ratio:.3f} < 0.8: fails the four-fifths rule",
    )
    refused = api.call("POST", "/v1/models/adult-mlp/versions/v1/promote", admin, expect=409)
    step("gate", f"promotion refused (409): {refused.json()['detail'][:140]}")

    mitigated = api.call(
        "POST",
        "/v1/fairness/mitigations",
        tokens["eli"],
        expect=201,
        json={"model": "adult-mlp", "version": "v1", "dataset": "adult", "sensitive": "sex"},
    ).json()
    version = mitigated["version"]
    result.artifact_dirs.append(version)
    claim = mitigated["privacy_claim"]
    if claim.get("epsilon") is None:
        raise DemoError("the mitigated version lost its DP guarantee")
    result.numbers["dp_epsilon_mitigated"] = claim["epsilon"]
    reaudit = api.call(
        "POST",
        "/v1/fairness/audits",
        tokens["eli"],
        expect=201,
        json={
            "model": "adult-mlp",
            "version": version,
            "dataset": "adult",
            "sensitive": ["sex", "race"],
            "bootstrap": 100,
        },
    ).json()
    after = _disparity(reaudit, "sex", "demographic_parity_ratio")
    result.numbers["dp_ratio_after"] = after
    step(
        "mitigation",
        f"ThresholdOptimizer post-processing → version {version}; demographic "
        f"parity ratio by sex {ratio:.3f} → {after:.3f}; re-audit "
        f"{'passes' if reaudit['passed'] else 'still fails: ' + _failures(reaudit)}; "
        f"fitted on noisy per-group histograms charged to the ledger (run "
        f"{mitigated['ledger_run']}): the card states ε = {claim['epsilon']:.3f} end to end "
        f"(training and mitigation composed by the {claim['accountant'].upper()} accountant, "
        f"δ = {claim['delta']:g})",
    )
    if not reaudit["passed"]:
        api.call(
            "POST",
            "/v1/fairness/overrides",
            tokens["olivia"],
            expect=201,
            json={
                "model": "adult-mlp",
                "version": version,
                "justification": (
                    "Mitigated to meet the four-fifths rule by sex; the residual error-rate "
                    "gap is accepted for the pilot, with live monitoring of outcomes and a "
                    "review in 90 days."
                ),
            },
        )
        step(
            "approval",
            "compliance officer olivia approved the mitigated version with a "
            "written justification (she did not train it)",
        )
    else:
        step("approval", "the mitigated version passes the gate under the current thresholds")
    api.call("POST", f"/v1/models/adult-mlp/versions/{version}/promote", admin)
    api.call(
        "POST",
        "/v1/policy/changes",
        tokens["olivia"],
        expect=201,
        json={
            "add": [["g2", "model:adult-mlp", "group:default-models"]],
            "reason": "adult-mlp approved for client applications after the fairness review",
        },
    )
    step("serve", f"adult-mlp {version} promoted and opened to clients by a policy change")

    _predictions(api, tokens, step, result)

    api.call(
        "POST",
        "/v1/policy/changes",
        tokens["olivia"],
        expect=201,
        json={
            "add": [["p", "marketing-app", "model:adult-mlp", "predict", "deny"]],
            "reason": "marketing use of income predictions is outside the approved purpose",
        },
    )
    r = api.call(
        "POST",
        "/v1/models/adult-mlp/predict",
        tokens["marketing-app"],
        expect=403,
        json={"record": result.numbers.pop("_sample")},
    )
    step(
        "policy edit",
        f"explicit deny for marketing-app with a reason; its next call: {r.status_code}",
    )

    rotated = api.call(
        "POST", "/v1/vault/deks/rotate", admin, json={"reason": "quarterly data-key rotation"}
    ).json()
    kek = api.call(
        "POST", "/v1/vault/kek/rotate", admin, json={"reason": "annual key-encryption-key rotation"}
    ).json()
    receipt = api.call("DELETE", "/v1/subjects/applicant-0003", tokens["olivia"]).json()
    gone = api.call(
        "POST",
        f"/v1/records/{result.numbers['_erased_record']}/decrypt",
        tokens["ada"],
        expect=(404, 410),
        json={"purpose": "spot check after erasure request"},
    )
    kept = api.call(
        "POST",
        f"/v1/records/{result.numbers['_kept_record']}/decrypt",
        tokens["ada"],
        json={"purpose": "spot check of a retained record"},
    )
    step(
        "keys and erasure",
        f"data keys rotated ({_short(rotated)}), KEK {kek['from_kek']} → "
        f"{kek['to_kek']} by rewrapping {kek['rewrapped']} keys; subject applicant-0003 erased "
        f"({_short(receipt)}); its record now answers {gone.status_code}, another subject's "
        f"still decrypts ({kept.status_code})",
    )

    now = datetime.now(UTC)
    report = api.call(
        "POST",
        "/v1/reports",
        tokens["ada"],
        expect=201,
        json={
            "from": (now - timedelta(days=1)).isoformat(),
            "to": (now + timedelta(minutes=1)).isoformat(),
        },
    ).json()
    report_dir = settings.reports_dir / report["id"]
    result.report_dir = report_dir
    verified = api.call("POST", "/v1/audit/verify", tokens["ada"]).json()
    if not verified.get("ok"):
        raise DemoError(f"the audit log did not verify: {verified}")
    from governance.audit.signing import load_signing_key, public_vkey
    from governance.reports.manifest import verify_report_dir

    vkey = public_vkey(settings.log_origin, load_signing_key(settings.resolved_signing_key_file))
    verify_report_dir(report_dir, vkey)
    step(
        "report",
        f"{report_dir} (report.json, report.html, report.pdf, signed "
        f"manifest.json); report manifest verified; audit log verified "
        f"({verified.get('tree_size')} entries, every checkpoint signature checked)",
    )


def _failures(audit: dict[str, Any]) -> str:
    failures = audit.get("failures", [])
    return ", ".join(f"{f.get('measure')} on {f.get('feature', f.get('audit'))}" for f in failures)[
        :160
    ]


def _short(doc: dict[str, Any]) -> str:
    keys = [k for k in ("rotated", "destroyed_keys", "records_affected", "keys") if k in doc]
    return (
        ", ".join(f"{k} {doc[k] if not isinstance(doc[k], list) else len(doc[k])}" for k in keys)
        or "done"
    )


def _predictions(
    api: _Api, tokens: dict[str, str], step: Callable[[str, str], None], result: DemoResult
) -> None:
    from governance.datasets.tabular import load_adult

    detail = api.call("GET", "/v1/models/adult-mlp", tokens["eli"]).json()
    names = [f["name"] for f in detail["manifest"]["input_schema"]["features"]]
    frame = load_adult().test.features[names].head(24)
    rows = [
        {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
        for rec in frame.to_dict(orient="records")
    ]
    result.numbers["_sample"] = rows[0]
    allowed = 0
    for i, row in enumerate(rows[:20]):
        subject = f"applicant-{i:04d}"
        r = api.call(
            "POST",
            "/v1/models/adult-mlp/predict",
            tokens["loan-app"],
            json={"record": row, "subject_id": subject},
        ).json()
        allowed += 1
        if i == 3:
            result.numbers["_erased_record"] = r["record_id"]
        if i == 4:
            result.numbers["_kept_record"] = r["record_id"]
    batch = api.call(
        "POST",
        "/v1/models/adult-mlp/predict",
        tokens["marketing-app"],
        json={"records": rows[20:24]},
    ).json()
    denied = [
        api.call(
            "POST",
            "/v1/models/adult-mlp/predict",
            tokens[who],
            expect=403,
            json={"record": rows[0]},
        ).status_code
        for who in ("ada", "eli")
    ]
    bad = api.call(
        "POST",
        "/v1/models/adult-mlp/predict",
        tokens["loan-app"],
        expect=422,
        json={"record": {**rows[0], "age": "forty"}},
    ).json()
    step(
        "predictions",
        f"{allowed} single calls and a batch of {len(batch['predictions'])} "
        f"allowed; auditor and engineer denied ({denied}); a bad record refused with 422 "
        f"naming field {bad.get('field')!r}",
    )
