"""Every file Warden writes is its owner's alone: files 0600, folders 0700, whatever the umask.

The database and its WAL, the server log, model artifacts, reports and dataset copies hold
personal data or evidence. Processes Warden starts (``warden ...``, ``warden serve`` and the
journal writer it spawns) set the umask to 0077 first; the files that matter most are also
created with explicit modes here, because a umask is the host process's when Warden is
imported as a library.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO, Final

from governance.errors import ConfigurationError

PRIVATE_FILE: Final[int] = 0o600
PRIVATE_DIR: Final[int] = 0o700
PRIVATE_UMASK: Final[int] = 0o077


def restrict_umask() -> int:
    """Make every file this process creates from now on private; returns the old umask."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """``mkdir -p`` whose every created folder is 0700 (existing folders are left as they are).

    Returns:
        ``path``.
    """
    missing: list[Path] = []
    current = Path(path)
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # created by a concurrent caller: its mode is theirs to set
        # mkdir's mode passes through the umask, which can only clear bits: set it outright.
        os.chmod(folder, PRIVATE_DIR)
    return path


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty and 0600 unless it exists.

    Returns:
        True if it was created now.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return False
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return True


def open_private(path: Path, *, append: bool = False) -> BinaryIO:
    """Open ``path`` for binary writing (truncated, or appended to), created 0600.

    An existing file is set to 0600 as well: what Warden writes into is Warden's.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        return os.fdopen(fd, "ab" if append else "wb")
    except BaseException:
        os.close(fd)
        raise


def copy_private(source: Path, target: Path) -> None:
    """Copy a file's bytes (not its mode: a 0644 source must not make a 0644 copy) as 0600."""
    with open(source, "rb") as src, open_private(target) as dst:
        shutil.copyfileobj(src, dst)


def check_private_file(path: Path, what: str) -> None:
    """Refuse a secret file that others can read or write, or that is not a regular file.

    Raises:
        ConfigurationError: naming the path and the fix, never the content.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigurationError(f"{what} {path} does not exist: run `warden init` first") from None
    except OSError as exc:
        raise ConfigurationError(f"{what} {path} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigurationError(f"{what} {path} is not a regular file")
    if info.st_mode & 0o077:
        raise ConfigurationError(
            f"{what} {path} is readable or writable by others "
            f"(mode {oct(info.st_mode & 0o777)}); run `chmod 600 {path}`"
        )
    if not os.access(path, os.R_OK):
        raise ConfigurationError(f"{what} {path} is not readable by this user")
