"""The models this process serves: a loaded model and its batcher per (name, version).

In memory only; the durable model registry (versions, approvals, promotion) lives in the service,
which calls :meth:`ModelHost.load` at start for every serving version and again on promotion.

Swaps are safe under traffic. A new version is verified, loaded and its batcher started before
the lock is taken; under the lock only references change. A request holds a *lease*
(:meth:`ModelHost.lease`) from encoding to decision, so it encodes with one manifest and runs on
the same model; a version that stops serving is retired, and its batcher is closed (after
draining) only when its last lease is released.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from inference.batcher import BatchObserver, Execution, MicroBatcher, default_execution
from inference.errors import InferenceError, ManifestError, ModelNotLoadedError
from inference.model import LoadedModel

# Chosen for the device (execution None), forward passes on the event loop move to a worker
# thread once their median passes this: a model that slow would hold up every other request.
AUTO_LOOP_BUDGET_MS = 5.0


@dataclass(eq=False)
class HostedModel:
    """One loaded version: the model, its running batcher and where it came from."""

    name: str
    version: str
    model: LoadedModel
    batcher: MicroBatcher
    artifact_dir: Path
    digest: str | None = None
    _leases: int = field(default=0, repr=False)
    _retired: bool = field(default=False, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        """``(name, version)``."""
        return (self.name, self.version)


class Lease:
    """One request's hold on a hosted version (see :meth:`ModelHost.lease`).

    A class rather than a generator context manager: a lease is taken on every prediction.
    """

    __slots__ = ("_host", "_hosted")

    def __init__(self, host: ModelHost, hosted: HostedModel) -> None:
        self._host = host
        self._hosted = hosted

    def __enter__(self) -> HostedModel:
        return self._hosted

    def __exit__(self, *exc_info: object) -> None:
        self._host._release(self._hosted)


class ModelHost:
    """Thread-safe holder of the loaded models and the serving version of each name.

    Args:
        device: where every model runs.
        max_batch_rows: passed to each model's :class:`MicroBatcher`.
        max_wait_ms: passed to each model's :class:`MicroBatcher`.
        max_queue_rows: passed to each model's :class:`MicroBatcher`.
        execution: where each model's forward passes run (see :mod:`inference.batcher`);
            None picks :func:`~inference.batcher.default_execution` for ``device``, and on the
            loop a budget of :data:`AUTO_LOOP_BUDGET_MS` per forward pass.
        onnx_threads: ONNX Runtime's intra-op threads for each imported model's session.
        on_batch: passed to each model's :class:`MicroBatcher` (the service's metrics).
    """

    def __init__(
        self,
        *,
        device: torch.device,
        max_batch_rows: int = 256,
        max_wait_ms: float = 0.0,
        max_queue_rows: int | None = None,
        execution: Execution | None = None,
        onnx_threads: int = 1,
        on_batch: BatchObserver | None = None,
    ) -> None:
        self.device = device
        self.onnx_threads = onnx_threads
        self.execution: Execution = execution or default_execution(device)
        self._batcher_options = {
            "max_batch_rows": max_batch_rows,
            "max_wait_ms": max_wait_ms,
            "max_queue_rows": max_queue_rows,
            "execution": self.execution,
            "loop_budget_ms": AUTO_LOOP_BUDGET_MS if execution is None else None,
            "on_batch": on_batch,
        }
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, str], HostedModel] = {}
        self._serving: dict[str, str] = {}
        self._closed = False

    def load(
        self,
        name: str,
        version: str,
        artifact_dir: str | Path,
        *,
        expected_sha256: str | None = None,
        serve: bool = True,
        keep_previous: bool = False,
    ) -> HostedModel:
        """Verify and load a version, start its batcher and (by default) make it serving.

        Loading an already loaded version loads nothing again; with ``serve`` it only switches.

        Args:
            name: the model name the registry knows; the manifest must say the same.
            version: the version the registry knows; the manifest must say the same.
            artifact_dir: the artifact folder.
            expected_sha256: the registered digest of ``manifest.json``, pinning the artifact.
            serve: make this version the one :meth:`get` returns for ``name``.
            keep_previous: keep the version that served before loaded (for a quick rollback);
                by default it is retired.

        Returns:
            The hosted version.

        Raises:
            ManifestError: integrity or format problem, or a manifest naming another model.
            InferenceError: when the host is closed.
        """
        key = (name, version)
        with self._lock:
            self._check_open()
            existing = self._loaded.get(key)
        fresh: HostedModel | None = None
        if existing is None:
            fresh = self._build(name, version, Path(artifact_dir), expected_sha256)
        elif expected_sha256 is not None and existing.digest not in (None, expected_sha256):
            raise ManifestError(
                "this version is already loaded from an artifact with another digest"
            )
        retired: list[HostedModel] = []
        try:
            with self._lock:
                self._check_open()
                hosted = self._loaded.get(key)
                if hosted is None:
                    if fresh is None:
                        raise ModelNotLoadedError(
                            f"model {name!r} version {version!r} was unloaded"
                        )
                    hosted = self._loaded[key] = fresh
                    fresh = None
                if serve:
                    retired += self._switch_locked(hosted, keep_previous=keep_previous)
        finally:
            # A fresh model that did not get in (host closed, or a concurrent load of the same
            # version won) must not leave a worker thread behind.
            if fresh is not None:
                fresh._retired = True
                fresh.batcher.close()  # never served, so nothing to drain: returns at once
            self._close_unleased(retired)
        return hosted

    def _build(
        self, name: str, version: str, artifact_dir: Path, expected_sha256: str | None
    ) -> HostedModel:
        model = LoadedModel.load(
            artifact_dir,
            self.device,
            expected_sha256=expected_sha256,
            onnx_threads=self.onnx_threads,
        )
        if (model.manifest.name, model.manifest.version) != (name, version):
            raise ManifestError("the artifact's manifest names another model or version")
        batcher = MicroBatcher.for_model(model, **self._batcher_options)
        batcher.start()
        return HostedModel(name, version, model, batcher, artifact_dir, digest=expected_sha256)

    def serve(self, name: str, version: str, *, keep_previous: bool = True) -> None:
        """Make an already loaded version the serving one (a rollback, or a staged promotion).

        Args:
            name: the model name.
            version: a loaded version of it.
            keep_previous: keep the previously serving version loaded.

        Raises:
            ModelNotLoadedError: when that version is not loaded.
        """
        with self._lock:
            hosted = self._loaded.get((name, version))
            if hosted is None:
                raise ModelNotLoadedError(f"model {name!r} version {version!r} is not loaded")
            retired = self._switch_locked(hosted, keep_previous=keep_previous)
        self._close_unleased(retired)

    def unload(self, name: str, version: str) -> None:
        """Retire a version; if it was serving, ``name`` has no serving version afterwards.

        Requests holding a lease finish on it; its batcher closes when the last one ends.

        Raises:
            ModelNotLoadedError: when that version is not loaded.
        """
        with self._lock:
            hosted = self._loaded.get((name, version))
            if hosted is None:
                raise ModelNotLoadedError(f"model {name!r} version {version!r} is not loaded")
            retired = [self._retire_locked(hosted)]
        self._close_unleased(retired)

    def get(self, name: str) -> HostedModel:
        """The serving version of ``name``.

        Without a lease the version may be retired at any moment; request handlers should use
        :meth:`lease`.

        Raises:
            ModelNotLoadedError: when ``name`` has no serving version here.
        """
        with self._lock:
            return self._serving_locked(name)

    def get_version(self, name: str, version: str) -> HostedModel:
        """A specific loaded version, serving or not.

        Raises:
            ModelNotLoadedError: when that version is not loaded.
        """
        with self._lock:
            hosted = self._loaded.get((name, version))
        if hosted is None:
            raise ModelNotLoadedError(f"model {name!r} version {version!r} is not loaded")
        return hosted

    def lease(self, name: str, version: str | None = None) -> Lease:
        """Hold a version for the length of one request (encode, submit, decide).

        Use as ``with host.lease(name) as hosted:``. The version is taken when ``lease`` is
        called, so an unknown name fails there; the lease ends when the block does.

        Args:
            name: the model name.
            version: a specific loaded version; the serving one when None.

        Returns:
            The lease, whose ``__enter__`` gives the hosted version; its batcher stays open
            until the lease ends.

        Raises:
            ModelNotLoadedError: when there is no such (serving) version.
        """
        with self._lock:
            if version is None:
                hosted = self._serving_locked(name)
            else:
                found = self._loaded.get((name, version))
                if found is None:
                    raise ModelNotLoadedError(f"model {name!r} version {version!r} is not loaded")
                hosted = found
            hosted._leases += 1
        return Lease(self, hosted)

    def _release(self, hosted: HostedModel) -> None:
        with self._lock:
            hosted._leases -= 1
            close_now = hosted._retired and hosted._leases == 0
        if close_now:
            hosted.batcher.close(wait=False)

    def serving(self) -> dict[str, str]:
        """Name → serving version."""
        with self._lock:
            return dict(self._serving)

    def runtimes(self) -> dict[str, str]:
        """Name → what runs its serving version: ``torch/cpu``, ``onnxruntime/<provider>``."""
        with self._lock:
            return {
                name: self._loaded[(name, v)].model.runtime for name, v in self._serving.items()
            }

    def loaded(self) -> list[tuple[str, str]]:
        """Every loaded ``(name, version)``, sorted."""
        with self._lock:
            return sorted(self._loaded)

    def close(self, *, timeout: float | None = None) -> None:
        """Retire every version and wait for the unleased batchers to drain.

        Args:
            timeout: most seconds to wait for each batcher.
        """
        with self._lock:
            self._closed = True
            retired = [self._retire_locked(h) for h in list(self._loaded.values())]
        self._close_unleased(retired, wait=True, timeout=timeout)

    # internals, called with the lock held ------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise InferenceError("the model host is closed")

    def _serving_locked(self, name: str) -> HostedModel:
        version = self._serving.get(name)
        if version is None:
            raise ModelNotLoadedError(f"model {name!r} has no serving version loaded")
        return self._loaded[(name, version)]

    def _switch_locked(self, hosted: HostedModel, *, keep_previous: bool) -> list[HostedModel]:
        previous = self._serving.get(hosted.name)
        self._serving[hosted.name] = hosted.version
        if keep_previous or previous is None or previous == hosted.version:
            return []
        return [self._retire_locked(self._loaded[(hosted.name, previous)])]

    def _retire_locked(self, hosted: HostedModel) -> HostedModel:
        self._loaded.pop(hosted.key, None)
        if self._serving.get(hosted.name) == hosted.version:
            del self._serving[hosted.name]
        hosted._retired = True
        return hosted

    def _close_unleased(
        self, retired: list[HostedModel], *, wait: bool = False, timeout: float | None = None
    ) -> None:
        # Read the lease count under the lock; a lease taken later is impossible (retired
        # versions are no longer in the maps), so a zero here stays zero.
        with self._lock:
            idle = [h for h in retired if h._leases == 0]
        for hosted in idle:
            hosted.batcher.close(wait=wait, timeout=timeout)
