"""setuptools' ``build_py`` that also copies ``migrations/`` and ``policies/`` into the wheel.

The top-level folders stay the one editable source; a built wheel carries copies under
``governance/_shipped/``, where :func:`governance.config.shipped_dir` finds them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools.command.build_py import build_py

SHIPPED = ("migrations", "policies")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc")


class BuildPyWithShippedFiles(build_py):
    """``build_py``, then the shipped folders copied beside the package's modules."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            # An editable install reads the checkout's own folders.
            return
        root = Path(__file__).resolve().parent.parent
        target = Path(self.build_lib) / "governance" / "_shipped"
        for name in SHIPPED:
            source = root / name
            if not source.is_dir():
                # A wheel without them would install and then fail at `warden init`.
                raise FileNotFoundError(f"{source} is missing: the wheel needs it")
            shutil.copytree(source, target / name, ignore=_SKIP, dirs_exist_ok=True)
