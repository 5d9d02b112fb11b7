"""Key providers: key-file safety, the key document, wrap/unwrap, rotation, env, registry."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from governance.errors import ConfigurationError, WardenError
from governance.vault.errors import (
    DecryptionError,
    KeyFileError,
    KeyLifecycleError,
    KeyProviderError,
    VaultConfigError,
    VaultError,
)
from governance.vault.providers import (
    KEYS_ENV_VAR,
    EnvKeyProvider,
    KeyProvider,
    LocalKeyFileProvider,
    ServiceKeyProvider,
    WrappedKey,
    load_provider,
    provider_kinds,
    register_provider,
)

AAD = b"dek:subject-1"


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "keys.json"


@pytest.fixture
def provider(key_path: Path) -> LocalKeyFileProvider:
    return LocalKeyFileProvider.create(key_path)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _document(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _secrets_in(document: dict[str, Any]) -> list[str]:
    """Every secret in a key document, as base64 and as hex, for leak checks."""
    encoded = [kek["key"] for kek in document["keks"]]
    encoded += [document["blind_index_key"], document["digest_key"]]
    out: list[str] = []
    for value in encoded:
        out.append(value)
        out.append(value[:16])  # a partial leak counts too
        with contextlib.suppress(ValueError):
            out.append(base64.b64decode(value).hex())
    return out


def _write_document(path: Path, content: str | bytes, *, mode: int = 0o600) -> None:
    data = content.encode() if isinstance(content, str) else content
    path.write_bytes(data)
    path.chmod(mode)


def _assert_no_leak(exc: BaseException, secrets: list[str]) -> None:
    shown = " ".join([str(exc), repr(exc), *map(str, exc.args)])
    for secret in secrets:
        assert secret not in shown
    # No chained exception may carry the document along either.
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


@pytest.fixture
def valid_document() -> dict[str, Any]:
    def key(seed: int) -> str:
        return base64.b64encode(bytes([seed]) * 32).decode()

    return {
        "format": "warden.keys/1",
        "current": "kek-2",
        "keks": [
            {"id": "kek-1", "created": "2025-01-01T00:00:00+00:00", "key": key(1)},
            {"id": "kek-2", "created": "2025-06-01T00:00:00+00:00", "key": key(2)},
        ],
        "blind_index_key": key(3),
        "digest_key": key(4),
    }


# --- creation -------------------------------------------------------------------------------


def test_create_writes_owner_only_file_even_with_a_permissive_umask(key_path: Path) -> None:
    old = os.umask(0)
    try:
        LocalKeyFileProvider.create(key_path)
    finally:
        os.umask(old)
    assert stat.S_ISREG(key_path.stat().st_mode)
    assert _mode(key_path) == 0o600
    assert [p.name for p in key_path.parent.iterdir()] == ["keys.json"]  # no temporary left


def test_created_document_has_the_documented_format(provider: LocalKeyFileProvider) -> None:
    document = _document(provider.path)
    assert document["format"] == "warden.keys/1"
    assert document["current"] == "kek-1" == provider.key_id
    assert [kek["id"] for kek in document["keks"]] == ["kek-1"]
    secrets = [
        base64.b64decode(document["keks"][0]["key"], validate=True),
        base64.b64decode(document["blind_index_key"], validate=True),
        base64.b64decode(document["digest_key"], validate=True),
    ]
    assert all(len(secret) == 32 for secret in secrets)
    assert len(set(secrets)) == 3
    assert provider.blind_index_key() == secrets[1]
    assert provider.digest_key() == secrets[2]


def test_create_refuses_to_overwrite(key_path: Path) -> None:
    key_path.write_text("precious")
    key_path.chmod(0o600)
    with pytest.raises(KeyFileError, match="refusing to overwrite") as caught:
        LocalKeyFileProvider.create(key_path)
    assert str(key_path) in str(caught.value)
    assert key_path.read_text() == "precious"
    assert [p.name for p in key_path.parent.iterdir()] == ["keys.json"]


def test_create_in_a_missing_folder_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot write key file"):
        LocalKeyFileProvider.create(tmp_path / "absent" / "keys.json")


def test_loaded_file_has_the_same_keys(provider: LocalKeyFileProvider) -> None:
    wrapped = provider.wrap(b"k" * 32, aad=AAD)
    again = LocalKeyFileProvider(provider.path)
    assert again.key_id == provider.key_id
    assert again.unwrap(wrapped, aad=AAD) == b"k" * 32
    assert again.blind_index_key() == provider.blind_index_key()


# --- refusing unsafe or invalid files -------------------------------------------------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602, 0o620, 0o700 | 0o007])
def test_group_or_other_access_is_refused(
    provider: LocalKeyFileProvider, key_path: Path, mode: int
) -> None:
    secrets = _secrets_in(_document(key_path))
    key_path.chmod(mode)
    with pytest.raises(KeyFileError) as caught:
        LocalKeyFileProvider(key_path)
    message = str(caught.value)
    assert str(key_path) in message
    assert "0600" in message
    assert f"{mode:04o}" in message
    assert caught.value.status_code == 500
    _assert_no_leak(caught.value, secrets)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_modes_are_accepted(
    provider: LocalKeyFileProvider, key_path: Path, mode: int
) -> None:
    key_path.chmod(mode)
    assert LocalKeyFileProvider(key_path).key_id == "kek-1"


def test_directory_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "keys.json"
    folder.mkdir(mode=0o700)
    with pytest.raises(KeyFileError, match="not a regular file"):
        LocalKeyFileProvider(folder)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "keys.json"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(KeyFileError, match="not a regular file"):
        LocalKeyFileProvider(fifo)


def test_symlink_to_a_safe_file_is_followed(provider: LocalKeyFileProvider, tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(provider.path)
    assert LocalKeyFileProvider(link).key_id == provider.key_id
    provider.path.chmod(0o644)
    with pytest.raises(KeyFileError, match="0644"):
        LocalKeyFileProvider(link)


def test_missing_file_is_refused(key_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read key file") as caught:
        LocalKeyFileProvider(key_path)
    assert str(key_path) in str(caught.value)


def test_unreachable_path_is_refused(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    with pytest.raises(KeyFileError, match="cannot read key file"):
        LocalKeyFileProvider(not_a_folder / "keys.json")


def _ignores_file_modes(folder: Path) -> bool:
    """True when this process reads and writes regardless of mode bits (root, CAP_DAC_OVERRIDE)."""
    probe = folder / "probe"
    probe.write_text("x")
    probe.chmod(0)
    try:
        probe.read_text()
    except PermissionError:
        return False
    finally:
        probe.unlink()
    return True


def test_unreadable_file_is_refused(provider: LocalKeyFileProvider, key_path: Path) -> None:
    if _ignores_file_modes(key_path.parent):
        pytest.skip("this process reads files whatever their mode")
    key_path.chmod(0o000)
    with pytest.raises(KeyFileError, match="cannot read key file"):
        LocalKeyFileProvider(key_path)


def test_oversized_file_is_refused(key_path: Path) -> None:
    _write_document(key_path, b" " * ((1 << 20) + 1))
    with pytest.raises(KeyFileError, match="larger than"):
        LocalKeyFileProvider(key_path)


def _short(value: str) -> str:
    return base64.b64encode(base64.b64decode(value)[:31]).decode()


INVALID_DOCUMENTS = {
    "format": (lambda d: d.update(format="warden.keys/2"), "'format'"),
    "missing current": (lambda d: d.pop("current"), "'current'"),
    "missing keks": (lambda d: d.pop("keks"), "'keks'"),
    "empty keks": (lambda d: d.update(keks=[]), "'keks'"),
    "missing blind_index_key": (lambda d: d.pop("blind_index_key"), "'blind_index_key'"),
    "missing digest_key": (lambda d: d.pop("digest_key"), "'digest_key'"),
    "missing kek key": (lambda d: d["keks"][0].pop("key"), "keks[0].key"),
    "missing kek id": (lambda d: d["keks"][0].pop("id"), "keks[0].id"),
    "short kek": (lambda d: d["keks"][1].update(key=_short(d["keks"][1]["key"])), "32 bytes"),
    "short blind key": (
        lambda d: d.update(blind_index_key=_short(d["blind_index_key"])),
        "'blind_index_key' must decode to 32 bytes",
    ),
    "short digest key": (
        lambda d: d.update(digest_key=_short(d["digest_key"])),
        "'digest_key' must decode to 32 bytes",
    ),
    "not base64": (lambda d: d["keks"][0].update(key="!!" + d["keks"][0]["key"]), "base64"),
    "current unknown": (lambda d: d.update(current="kek-9"), "does not name a KEK"),
    "duplicate id": (lambda d: d["keks"][1].update(id="kek-1"), "repeats"),
    "bad id": (lambda d: d["keks"][0].update(id="primary"), "kek-<n>"),
    "bad created": (lambda d: d["keks"][0].update(created="yesterday"), "ISO 8601"),
    "unknown field": (lambda d: d.update(extra=1), "unknown field(s): extra"),
    "equal hmac keys": (
        lambda d: d.update(digest_key=d["blind_index_key"]),
        "independent secrets",
    ),
    "hmac key equals kek": (
        lambda d: d.update(digest_key=d["keks"][0]["key"]),
        "independent of every KEK",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_DOCUMENTS))
def test_invalid_document_is_refused_without_leaking_keys(
    key_path: Path, valid_document: dict[str, Any], case: str
) -> None:
    secrets = _secrets_in(valid_document)
    mutate, expected = INVALID_DOCUMENTS[case]
    mutate(valid_document)
    _write_document(key_path, json.dumps(valid_document))
    with pytest.raises(KeyFileError) as caught:
        LocalKeyFileProvider(key_path)
    message = str(caught.value)
    assert str(key_path) in message
    assert "invalid" in message
    assert expected in message
    _assert_no_leak(caught.value, secrets)


def test_every_problem_is_reported_at_once(key_path: Path, valid_document: dict[str, Any]) -> None:
    valid_document["format"] = "other"
    valid_document.pop("digest_key")
    valid_document["keks"][0]["created"] = 5
    _write_document(key_path, json.dumps(valid_document))
    with pytest.raises(KeyFileError) as caught:
        LocalKeyFileProvider(key_path)
    message = str(caught.value)
    assert "'format'" in message
    assert "'digest_key'" in message
    assert "keks[0].created" in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "not valid JSON"),
        ('{"format": "warden.keys/1", "keks": [{"key": "SECRETSECRETSECRET', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (b"\xff\xfeSECRETSECRETSECRET", "not UTF-8"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_garbage_is_refused_without_quoting_it(
    key_path: Path, content: str | bytes, expected: str
) -> None:
    _write_document(key_path, content)
    with pytest.raises(KeyFileError, match=expected) as caught:
        LocalKeyFileProvider(key_path)
    assert str(key_path) in str(caught.value)
    _assert_no_leak(caught.value, ["SECRETSECRET", "\\xff", "0xff"])


def test_reprs_hold_no_key_material(provider: LocalKeyFileProvider) -> None:
    secrets = _secrets_in(_document(provider.path))
    wrapped = provider.wrap(b"d" * 32, aad=AAD)
    shown = repr(provider) + str(provider) + repr(wrapped)
    for secret in [*secrets, wrapped.blob.hex(), repr(wrapped.blob)]:
        assert secret not in shown
    assert "kek-1" in repr(provider)


# --- wrap / unwrap --------------------------------------------------------------------------


def test_wrap_round_trip_and_binding(provider: LocalKeyFileProvider) -> None:
    dek = os.urandom(32)
    wrapped = provider.wrap(dek, aad=AAD)
    assert wrapped.kek_id == "kek-1"
    assert dek not in wrapped.blob
    assert provider.unwrap(wrapped, aad=AAD) == dek
    assert provider.wrap(dek, aad=AAD).blob != wrapped.blob  # fresh nonce each time
    with pytest.raises(DecryptionError, match="wrapped data key failed authentication"):
        provider.unwrap(wrapped, aad=b"dek:subject-2")


@pytest.mark.parametrize("position", [0, 11, 12, 30, -1])
def test_tampered_wrapped_key_fails(provider: LocalKeyFileProvider, position: int) -> None:
    wrapped = provider.wrap(os.urandom(32), aad=AAD)
    blob = bytearray(wrapped.blob)
    blob[position] ^= 0x01
    with pytest.raises(DecryptionError):
        provider.unwrap(WrappedKey(wrapped.kek_id, bytes(blob)), aad=AAD)


@pytest.mark.parametrize("length", [0, 12, 27])
def test_truncated_wrapped_key_fails(provider: LocalKeyFileProvider, length: int) -> None:
    wrapped = provider.wrap(os.urandom(32), aad=AAD)
    with pytest.raises(DecryptionError):
        provider.unwrap(WrappedKey(wrapped.kek_id, wrapped.blob[:length]), aad=AAD)


def test_relabelled_kek_id_fails(provider: LocalKeyFileProvider) -> None:
    wrapped = provider.wrap(os.urandom(32), aad=AAD)
    provider.rotate()
    with pytest.raises(DecryptionError):
        provider.unwrap(WrappedKey("kek-2", wrapped.blob), aad=AAD)


def test_unknown_kek_fails_closed(provider: LocalKeyFileProvider) -> None:
    wrapped = provider.wrap(os.urandom(32), aad=AAD)
    with pytest.raises(KeyProviderError, match="'kek-7' is not available") as caught:
        provider.unwrap(WrappedKey("kek-7", wrapped.blob), aad=AAD)
    assert caught.value.status_code == 503


# --- rotation and retirement ----------------------------------------------------------------


def test_rotate_keeps_old_keks_for_unwrap_and_writes_0600(
    provider: LocalKeyFileProvider, key_path: Path
) -> None:
    dek = os.urandom(32)
    old = provider.wrap(dek, aad=AAD)
    assert provider.rotate() == "kek-2"
    assert provider.key_id == "kek-2"
    assert provider.available_kek_ids() == ("kek-1", "kek-2")
    assert _mode(key_path) == 0o600
    assert provider.unwrap(old, aad=AAD) == dek
    assert provider.wrap(dek, aad=AAD).kek_id == "kek-2"

    document = _document(key_path)
    assert document["current"] == "kek-2"
    assert [kek["id"] for kek in document["keks"]] == ["kek-1", "kek-2"]
    reloaded = LocalKeyFileProvider(key_path)
    assert reloaded.unwrap(old, aad=AAD) == dek
    assert reloaded.blind_index_key() == provider.blind_index_key()  # HMAC keys never rotate
    assert sorted(p.name for p in key_path.parent.iterdir()) == ["keys.json", "keys.json.lock"]
    assert _mode(key_path.parent / "keys.json.lock") == 0o600


def test_rotation_by_another_process_is_picked_up(key_path: Path) -> None:
    first = LocalKeyFileProvider.create(key_path)
    second = LocalKeyFileProvider(key_path)
    from_before = second.wrap(b"b" * 32, aad=AAD)
    first.rotate()
    from_first = first.wrap(b"a" * 32, aad=AAD)
    assert second.unwrap(from_first, aad=AAD) == b"a" * 32
    # The next key the second one wraps is under the new KEK: it follows the file at once.
    assert second.key_id == "kek-2"
    assert second.wrap(b"c" * 32, aad=AAD).kek_id == "kek-2"
    assert (from_before.kek_id, first.unwrap(from_before, aad=AAD)) == ("kek-1", b"b" * 32)
    # Rotation starts from the file, so the second provider never issues a second "kek-2".
    first.rotate()
    assert second.rotate() == "kek-4"
    assert LocalKeyFileProvider(key_path).available_kek_ids() == (
        "kek-1",
        "kek-2",
        "kek-3",
        "kek-4",
    )


def test_concurrent_rotations_from_processes_lose_no_kek(key_path: Path) -> None:
    LocalKeyFileProvider.create(key_path)
    script = (
        "import sys\n"
        "from governance.vault.providers import LocalKeyFileProvider\n"
        "p = LocalKeyFileProvider(sys.argv[1])\n"
        "for _ in range(5):\n"
        "    p.rotate()\n"
    )
    root = Path(__file__).resolve().parents[2]
    workers = [
        subprocess.Popen([sys.executable, "-c", script, str(key_path)], cwd=root) for _ in range(2)
    ]
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0]
    provider = LocalKeyFileProvider(key_path)
    assert provider.available_kek_ids() == tuple(f"kek-{n}" for n in range(1, 12))
    assert provider.key_id == "kek-11"
    assert _mode(key_path) == 0o600


def test_wraps_during_rotation_all_unwrap(provider: LocalKeyFileProvider) -> None:
    results: list[tuple[bytes, WrappedKey]] = []
    lock = threading.Lock()

    def wrap_many() -> None:
        for _ in range(200):
            dek = os.urandom(32)
            wrapped = provider.wrap(dek, aad=AAD)
            with lock:
                results.append((dek, wrapped))

    threads = [threading.Thread(target=wrap_many) for _ in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(5):
        provider.rotate()
    for thread in threads:
        thread.join()
    assert len(results) == 600
    assert all(provider.unwrap(wrapped, aad=AAD) == dek for dek, wrapped in results)


def test_rotate_refuses_a_file_made_unsafe(provider: LocalKeyFileProvider, key_path: Path) -> None:
    old = provider.wrap(b"a" * 32, aad=AAD)
    key_path.chmod(0o644)
    with pytest.raises(KeyFileError, match="0644"):
        provider.rotate()
    # Fail closed: nothing new is wrapped from a file that became unsafe...
    with pytest.raises(KeyProviderError, match="0644"):
        provider.wrap(b"b" * 32, aad=AAD)
    with pytest.raises(KeyProviderError, match="0644"):
        provider.key_id  # noqa: B018
    # ...what the process already holds still opens, and a repaired file is taken back.
    assert provider.unwrap(old, aad=AAD) == b"a" * 32
    key_path.chmod(0o600)
    assert provider.key_id == "kek-1"


def test_rotate_write_failure_keeps_the_old_file(
    provider: LocalKeyFileProvider, key_path: Path
) -> None:
    if _ignores_file_modes(key_path.parent):
        pytest.skip("this process writes into read-only folders")
    before = key_path.read_bytes()
    (key_path.parent / "keys.json.lock").touch(mode=0o600)
    key_path.parent.chmod(0o500)
    try:
        with pytest.raises(KeyProviderError, match="file unchanged"):
            provider.rotate()
    finally:
        key_path.parent.chmod(0o700)
    assert key_path.read_bytes() == before
    assert provider.key_id == "kek-1"


def test_retire_removes_an_old_kek(provider: LocalKeyFileProvider, key_path: Path) -> None:
    old = provider.wrap(os.urandom(32), aad=AAD)
    provider.rotate()
    provider.retire("kek-1")
    assert provider.available_kek_ids() == ("kek-2",)
    assert [kek["id"] for kek in _document(key_path)["keks"]] == ["kek-2"]
    assert _mode(key_path) == 0o600
    with pytest.raises(KeyProviderError):
        provider.unwrap(old, aad=AAD)
    # The next rotation never reuses a retired number.
    assert provider.rotate() == "kek-3"


def test_retire_refuses_current_and_unknown(provider: LocalKeyFileProvider) -> None:
    with pytest.raises(KeyLifecycleError, match="current KEK") as caught:
        provider.retire("kek-1")
    assert caught.value.status_code == 409
    with pytest.raises(KeyLifecycleError, match="no such KEK"):
        provider.retire("kek-5")


# --- environment provider -------------------------------------------------------------------


@pytest.fixture
def env(provider: LocalKeyFileProvider) -> dict[str, str]:
    return {KEYS_ENV_VAR: base64.b64encode(provider.path.read_bytes()).decode()}


def test_env_provider_round_trip(provider: LocalKeyFileProvider, env: dict[str, str]) -> None:
    from_env = EnvKeyProvider(env=env)
    assert from_env.key_id == provider.key_id
    assert from_env.available_kek_ids() == provider.available_kek_ids()
    assert from_env.blind_index_key() == provider.blind_index_key()
    assert from_env.digest_key() == provider.digest_key()
    dek = os.urandom(32)
    assert provider.unwrap(from_env.wrap(dek, aad=AAD), aad=AAD) == dek
    assert from_env.unwrap(provider.wrap(dek, aad=AAD), aad=AAD) == dek


def test_env_provider_accepts_wrapped_base64(
    provider: LocalKeyFileProvider, env: dict[str, str]
) -> None:
    # `export WARDEN_KEYS_JSON=$(base64 keys.json)` wraps lines at 76 columns.
    value = env[KEYS_ENV_VAR]
    wrapped = "\n".join(value[i : i + 76] for i in range(0, len(value), 76)) + "\n"
    assert EnvKeyProvider(env={KEYS_ENV_VAR: wrapped}).key_id == provider.key_id


def test_env_provider_reads_os_environ(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEYS_ENV_VAR, env[KEYS_ENV_VAR])
    assert EnvKeyProvider().key_id == "kek-1"


def test_env_provider_is_read_only(env: dict[str, str]) -> None:
    from_env = EnvKeyProvider(env=env)
    with pytest.raises(KeyLifecycleError, match="secret store") as caught:
        from_env.rotate()
    assert isinstance(caught.value, VaultError)
    assert KEYS_ENV_VAR in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "is not set"),
        ("   ", "is not set"),
        ("not base64 !!", "not valid base64"),
        (base64.b64encode(b"{}").decode(), "'format'"),
    ],
)
def test_env_provider_refuses_bad_values(value: str | None, expected: str) -> None:
    env = {} if value is None else {KEYS_ENV_VAR: value}
    with pytest.raises(VaultConfigError, match=expected) as caught:
        EnvKeyProvider(env=env)
    assert KEYS_ENV_VAR in str(caught.value)
    assert isinstance(caught.value, ConfigurationError)


def test_env_provider_errors_do_not_leak(valid_document: dict[str, Any]) -> None:
    secrets = _secrets_in(valid_document)
    valid_document["keks"][0]["key"] = _short(valid_document["keks"][0]["key"])
    env = {KEYS_ENV_VAR: base64.b64encode(json.dumps(valid_document).encode()).decode()}
    with pytest.raises(VaultConfigError, match="32 bytes") as caught:
        EnvKeyProvider(env=env)
    _assert_no_leak(caught.value, [*secrets, env[KEYS_ENV_VAR][:24]])


# --- protocol and registry ------------------------------------------------------------------


def test_providers_satisfy_the_protocols(
    provider: LocalKeyFileProvider, env: dict[str, str]
) -> None:
    for candidate in (provider, EnvKeyProvider(env=env)):
        assert isinstance(candidate, KeyProvider)
        assert isinstance(candidate, ServiceKeyProvider)


def test_load_provider_builds_each_kind(
    provider: LocalKeyFileProvider, env: dict[str, str]
) -> None:
    assert {"file", "env"} <= set(provider_kinds())
    from_file = load_provider("file", path=str(provider.path))
    assert isinstance(from_file, LocalKeyFileProvider)
    assert from_file.key_id == "kek-1"
    assert isinstance(load_provider("env", env=env), EnvKeyProvider)


def test_load_provider_refuses_bad_settings() -> None:
    with pytest.raises(VaultConfigError, match="needs the key file's path"):
        load_provider("file")
    with pytest.raises(VaultConfigError, match=r"unknown key provider kind 'kms'.*env, file"):
        load_provider("kms")


def test_register_provider(env: dict[str, str]) -> None:
    def factory(*, path: Path | None, env: Any) -> ServiceKeyProvider:
        return EnvKeyProvider(env=env)

    register_provider("test-custom", factory)
    assert "test-custom" in provider_kinds()
    assert load_provider("test-custom", env=env).key_id == "kek-1"
    with pytest.raises(ValueError, match="already registered"):
        register_provider("test-custom", factory)
    register_provider("test-custom", factory, replace=True)


@pytest.fixture(autouse=True)
def _restore_registry() -> Iterator[None]:
    from governance.vault import providers

    saved = dict(providers._REGISTRY)
    yield
    providers._REGISTRY.clear()
    providers._REGISTRY.update(saved)


def test_error_hierarchy_and_statuses() -> None:
    assert issubclass(VaultError, WardenError)
    assert KeyProviderError("x").status_code == 503
    error = DecryptionError()
    assert error.status_code == 422
    assert str(error) == (
        "record failed authentication: ciphertext, nonce or associated data altered, "
        "or record moved"
    )
    assert KeyFileError("x").status_code == 500
    assert issubclass(KeyFileError, ConfigurationError)
    assert issubclass(KeyFileError, VaultConfigError)
