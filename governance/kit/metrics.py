"""Warden's Prometheus metrics: one place that declares them, and the scrape's text.

Every metric is declared here at import, so that ``prometheus-client`` picks its multi-process
storage when ``PROMETHEUS_MULTIPROC_DIR`` is set (it decides per metric, at creation): the
server's worker processes then each write their own files and a scrape of any one of them sums
them (https://prometheus.github.io/client_python/multiprocess/). No label ever carries a
subject id, a record id, a key or a raw path: routes are templates, models and datasets names.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Latencies from a cached allow (well under a millisecond) to a deadline-bound 503 (seconds).
_LATENCY = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

REQUESTS = Counter(
    "warden_http_requests",
    "HTTP requests answered, by route template, method, status and decision.",
    ["route", "method", "status", "decision"],
)
REQUEST_SECONDS = Histogram(
    "warden_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer.",
    ["route", "method"],
    buckets=_LATENCY,
)
BATCH_ROWS = Histogram(
    "warden_inference_batch_rows",
    "Rows in one forward pass of a model's micro-batcher.",
    ["model"],
    buckets=_SIZES,
)
BATCH_REQUESTS = Histogram(
    "warden_inference_batch_requests",
    "Requests merged into one forward pass of a model's micro-batcher.",
    ["model"],
    buckets=_SIZES,
)
JOURNAL_QUEUE = Gauge(
    "warden_audit_appends_waiting",
    "Audit appends waiting for their group commit to be durable.",
    multiprocess_mode="livesum",
)
GROUP_COMMIT = Histogram(
    "warden_audit_group_commit_items",
    "Appends (a request's entries and record) made durable by one group commit.",
    buckets=_SIZES,
)
DURABLE_SECONDS = Histogram(
    "warden_audit_durable_write_seconds",
    "Time an audit append waits until it is durable (or refused).",
    buckets=_LATENCY,
)
POLICY_VERSION = Gauge(
    "warden_policy_version",
    "The policy version this process enforces (0: none, as the journal writer's).",
    multiprocess_mode="liveall",
)
GATE_DECISIONS = Counter(
    "warden_fairness_gate_decisions",
    "Promotions judged by the fairness gate, by decision and basis.",
    ["decision", "basis"],
)


_DECLARED = (
    REQUESTS,
    REQUEST_SECONDS,
    BATCH_ROWS,
    BATCH_REQUESTS,
    JOURNAL_QUEUE,
    GROUP_COMMIT,
    DURABLE_SECONDS,
    POLICY_VERSION,
    GATE_DECISIONS,
)
_storage_env: str | None = os.environ.get(MULTIPROC_ENV)


# The labelled children the request path uses, looked up without labels()' checks and lock.
_request_children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}


def count_request(route: str, method: str, status: int, decision: str, seconds: float) -> None:
    """One answered request: counted, and its latency observed."""
    key = (route, method, str(status), decision)
    children = _request_children.get(key)
    if children is None:
        children = (REQUESTS.labels(*key), REQUEST_SECONDS.labels(route, method))
        _request_children[key] = children
    children[0].inc()
    children[1].observe(seconds)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def follow_environment() -> None:
    """Store values as ``PROMETHEUS_MULTIPROC_DIR`` says now, for a process that imported this
    module before its environment was set (one forked from a preloaded interpreter).

    prometheus-client picks its storage when a value is created; values made before then are
    made again, empty (none has been recorded in such a process yet).
    """
    global _storage_env
    now = os.environ.get(MULTIPROC_ENV)
    if now == _storage_env:
        return
    _storage_env = now
    _request_children.clear()
    values.ValueClass = values.get_value_class()
    for metric in _DECLARED:
        if metric._labelnames:
            with metric._lock:
                metric._metrics.clear()
        else:
            metric._metric_init()


def scrape(extra: Iterable[Collector] = ()) -> bytes:
    """The exposition text: this process's metrics (or every worker's, in multi-process mode)
    followed by ``extra`` collectors, read now (values the database holds)."""
    if multiprocess():
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        parts = [generate_latest(merged)]
    else:
        parts = [generate_latest(REGISTRY)]
    side = CollectorRegistry(auto_describe=False)
    for collector in extra:
        side.register(collector)
    parts.append(generate_latest(side))
    return b"".join(parts)


def process_exited(pid: int | None = None) -> None:
    """Drop an exiting worker's live gauges from the multi-process files."""
    if multiprocess():
        mark_process_dead(pid if pid is not None else os.getpid())


def observe_batch(batcher: str, requests: int, rows: int) -> None:
    """A micro-batcher's forward pass (``batcher`` is ``model@version``: the model labels it)."""
    model = batcher.partition("@")[0]
    BATCH_ROWS.labels(model).observe(rows)
    BATCH_REQUESTS.labels(model).observe(requests)
