"""Safe key-file I/O: a permission-checked read, an atomic 0600 write, a cross-process lock.

Every failure is a :class:`KeyFileError` whose message names the path and, for permissions, the
required mode, never the content.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from governance.vault.errors import KeyFileError

REQUIRED_MODE = 0o600
# A key document with thousands of KEK versions is still far below this; anything larger is
# not a key file, and reading it whole would be a memory hazard.
MAX_KEY_FILE_BYTES = 1 << 20

# O_NONBLOCK: opening a FIFO planted at the path must not hang start-up.
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def read_key_file(path: Path) -> bytes:
    """Read a key file after checking that it is a regular file that only its owner can access.

    Args:
        path: the key file. A symlink is followed (secret mounts use them); the target is checked.

    Returns:
        The file's bytes.

    Raises:
        KeyFileError: the file is missing or unreadable, not a regular file, accessible by group
            or others, or larger than 1 MiB.
    """
    try:
        _check_file(path, os.stat(path))
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        raise KeyFileError(
            f"cannot read key file {path}: it does not exist (run `warden init`)"
        ) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    try:
        # The first check ran on a path that may since name another file: check what was opened.
        _check_file(path, os.fstat(fd))
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_KEY_FILE_BYTES:
                raise KeyFileError(f"key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes")
        return b"".join(chunks)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _check_file(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"key file {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} has mode {mode:04o}, which lets group or others access it; "
            f"the required mode is {REQUIRED_MODE:04o} (owner read/write only): "
            f"run `chmod 600 {path}`"
        )
    if info.st_size > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"key file {path} is larger than {MAX_KEY_FILE_BYTES} bytes")


def write_key_file(path: Path, data: bytes, *, replace: bool) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600.

    The data goes to a new temporary file in the same folder (O_EXCL, 0600), is fsynced, then
    takes the final name; the folder is fsynced so the new name survives a crash. A reader sees
    the old file or the new one, never a partial one.

    Args:
        path: the key file.
        data: the full new content.
        replace: replace an existing file (rotation). When False an existing file is never
            overwritten, even by a concurrent writer (the final name is taken with link(2)).

    Raises:
        KeyFileError: ``replace`` is False and the file exists, or the write failed (the
            existing file, if any, is then unchanged).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    failure: str | None = None
    try:
        _write_tmp(tmp, data)
        if replace:
            os.replace(tmp, path)
        else:
            _link_no_replace(tmp, path)
        _fsync_dir(path.parent)
    except FileExistsError:
        failure = f"refusing to overwrite existing key file {path}"
    except OSError as exc:
        failure = f"cannot write key file {path}: {exc.strerror or 'write failed'}"
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    if failure is not None:
        raise KeyFileError(failure)


def _write_tmp(tmp: Path, data: bytes) -> None:
    fd = os.open(tmp, _CREATE_FLAGS, REQUIRED_MODE)
    try:
        # The umask can only clear bits from 0600, but a file mode is too important to infer.
        os.fchmod(fd, REQUIRED_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _link_no_replace(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        # A filesystem without hard links: check then rename, with a small race window.
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        os.rename(tmp, path)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # some filesystems cannot open folders; the rename itself is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` so that processes rotating one key file queue.

    Without it two processes could each add a different ``kek-<n+1>`` and one of them would be
    lost with every data key it wrapped.

    Raises:
        KeyFileError: the lock file cannot be opened.
    """
    lock_path = path.with_name(f"{path.name}.lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, REQUIRED_MODE)
    except OSError as exc:
        raise KeyFileError(f"cannot open key file lock {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
