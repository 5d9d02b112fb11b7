"""What a server start and a CLI command import: not the trainer's, the reports', the
datasets' or the fairness audit's heavy libraries, which load on first use instead.

Opacus alone took 1.6 s of a 5.2 s start (it pulls in torch.distributed and scipy.stats);
matplotlib and the PDF renderer another 0.6 s; scipy.stats, pandas (with pyarrow) about 1.3 s more.
Checked in a fresh interpreter, by what is in ``sys.modules``, not by timing.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "opacus",
    "matplotlib",
    "weasyprint",
    "scipy",
    "pandas",
    "pyarrow",
    "fairlearn",
    "sklearn",
)

PROBE = """
import json, sys
import governance.cli.main
from governance.api.app import domain_routers
domain_routers()
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def test_the_server_and_the_cli_start_without_the_heavy_libraries() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


REMOTE_PROBE = """
import json, sys
from typer.testing import CliRunner
from governance.cli.main import app
from governance.cli.remote_tree import remote_root

runner = CliRunner()
groups = [[name, "--help"] for name in remote_root().list_commands(None)]
# A file-only command runs in remote mode too; its help loads its module. (`audit
# verify-bundle` still imports SQLAlchemy with governance.audit.cli.)
offline = [["report", "verify", "--help"]]
for args in [["--help"], *groups, *offline, ["whoami"]]:
    result = runner.invoke(app, args, terminal_width=100)
    assert result.exit_code == (1 if args == ["whoami"] else 0), (args, result.output)
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)))
"""


def test_help_and_the_remote_commands_start_without_torch(tmp_path: Path) -> None:
    # Remote mode, as on an auditor's laptop: a server named, no one signed in yet. Nor the
    # database layer: a remote command never opens a database.
    env = {**os.environ, "WARDEN_SERVER": "http://127.0.0.1:9", "XDG_CONFIG_HOME": str(tmp_path)}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            REMOTE_PROBE.format(heavy=("torch", "inference", "sqlalchemy", *HEAVY)),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=env,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("package", ["governance.privacy", "governance.datasets", "inference"])
def test_the_lazy_tables_name_the_exported_names(package: str) -> None:
    module = importlib.import_module(package)
    # The lazy table and the exported names are kept by hand; they must name the same things.
    assert set(module._WHERE) == set(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is getattr(
            importlib.import_module(f"{package}.{module._WHERE[name]}"), name
        )
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        module.nothing  # noqa: B018


def test_the_lazy_names_still_resolve() -> None:
    import governance.privacy as privacy
    from governance.privacy.training import train

    assert privacy.train is train


def test_an_artifacts_manifest_is_read_without_torch() -> None:
    # Remote `warden models register` reads the manifest on a machine that only talks to the API.
    probe = "import sys, inference.manifest, inference.errors; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"
