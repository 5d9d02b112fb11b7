"""The installed wheel, used from a folder outside the checkout (run by scripts/wheel_smoke.sh).

`warden init`, `warden serve`, one governed prediction of a toy model, `warden audit verify`:
each runs from the current folder with the wheel's own migrations and policies.

Usage: python scripts/wheel_smoke.py CHECKOUT (the checkout, which nothing may be read from)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import torch


def warden(*args: str) -> str:
    """Run the installed ``warden``; its output, or exit naming what it printed."""
    done = subprocess.run(["warden", *args], capture_output=True, text=True, check=False)  # noqa: S603, S607
    if done.returncode != 0:
        sys.exit(f"warden {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def toy_artifact(out: Path) -> Path:
    """A two-feature MLP with random weights, written as the wheel's own code writes one."""
    from inference.architectures import build_model
    from inference.artifact import save_artifact
    from inference.manifest import parse_manifest

    doc: dict[str, Any] = {
        "format": "warden.model/1",
        "name": "toy",
        "version": "1",
        "architecture": {"kind": "mlp", "input_dim": 2, "output_dim": 2, "hidden": [4]},
        "input_schema": {
            "features": [{"name": "age", "type": "numeric"}, {"name": "hours", "type": "numeric"}]
        },
        "preprocessing": {"numeric": {"age": {"mean": 40.0, "std": 12.0}}},
        "labels": ["no", "yes"],
        "training": {"private": False, "note": "random weights: the wheel smoke test"},
    }
    torch.manual_seed(0)
    stub = parse_manifest({**doc, "weights": {"file": "w", "sha256": "0" * 64}})
    save_artifact(out, build_model(stub.architecture), doc)
    return out


class Api:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)

    def call(self, method: str, path: str, token: str | None, expect: int, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = self.http.request(method, path, headers=headers, **kw)
        if r.status_code != expect:
            sys.exit(f"{method} {path}: {r.status_code}, expected {expect}: {r.text[:400]}")
        return r.json()


def main() -> None:
    checkout = Path(sys.argv[1]).resolve()
    import governance

    installed = Path(governance.__file__).resolve()
    if installed.is_relative_to(checkout) or Path.cwd().is_relative_to(checkout):
        sys.exit(f"not outside the checkout: governance from {installed}, cwd {Path.cwd()}")
    print(warden("--version").strip(), "from", installed.parent)
    from governance.config import shipped_dir

    for name in ("migrations", "policies"):
        if not shipped_dir(name).is_relative_to(installed.parent):
            sys.exit(f"{name} read from {shipped_dir(name)}, not from the wheel")

    init = json.loads(warden("init", "--officer", "olivia", "--json"))
    artifact = toy_artifact(Path("toy-artifact"))
    print(warden("models", "register", str(artifact)).strip())

    port = free_port()
    with Path("server.log").open("wb") as log:
        server = subprocess.Popen(  # noqa: S603
            ["warden", "serve", "--port", str(port)],  # noqa: S607
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
    try:
        api = Api(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 90
        while True:
            try:
                if api.http.get("/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit("the server did not start:\n" + Path("server.log").read_text()[-3000:])
            time.sleep(0.2)
        predict(api, init)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(warden("audit", "verify").strip().splitlines()[-1])
    print("wheel smoke test passed")


def predict(api: Api, init: dict[str, Any]) -> None:
    admin = init["admin_token"]
    officer = api.call("POST", "/v1/enrol", None, 201, json={"code": init["officer_code"]})
    olivia = officer["token"]
    api.call(
        "POST",
        "/v1/fairness/overrides",
        olivia,
        201,
        json={
            "model": "toy",
            "version": "1",
            "justification": "Wheel smoke test: a toy model with random weights and no "
            "evaluation data, approved only to exercise the serving path.",
        },
    )
    api.call("POST", "/v1/models/toy/versions/1/promote", admin, 200)
    api.call(
        "POST",
        "/v1/policy/changes",
        olivia,
        201,
        json={
            "add": [["g2", "model:toy", "group:default-models"]],
            "reason": "the toy model may be called by clients",
        },
    )
    api.call("POST", "/v1/principals", admin, 201, json={"name": "app", "kind": "service"})
    api.call(
        "POST",
        "/v1/roles/grant",
        admin,
        200,
        json={"principal": "app", "role": "client", "reason": "the smoke test's client"},
    )
    token = api.call("POST", "/v1/keys", admin, 201, json={"principal": "app"})["token"]
    # Policy changes reach the server by polling: the first call may still be denied.
    deadline = time.monotonic() + 10
    while True:
        r = api.http.post(
            "/v1/models/toy/predict",
            json={"record": {"age": 37, "hours": 40}},
            headers={"Authorization": f"Bearer {token}"},
        )
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if r.status_code != 200:
        sys.exit(f"prediction: {r.status_code}: {r.text[:400]}")
    print("prediction:", json.dumps(r.json())[:200])


if __name__ == "__main__":
    main()
