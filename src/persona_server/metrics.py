"""Prometheus metrics: what the server did, per route, persona and solver, for `GET /metrics`.

Every label value is bounded: routes are route templates (never raw paths), methods a fixed set, personas the
names the server serves (requests that reached none are "none"; a request for an unknown model refused with
`--strict-models` is "other"), solvers the names in persona chains, refusal limits names from our own code.

With `--workers N` each worker process counts its own; prometheus_client's multiprocess mode (a directory of
memory-mapped files named by `PROMETHEUS_MULTIPROC_DIR`, created by the parent, see `multiprocess_dir`) lets any
worker answer `/metrics` with the sum over all of them. In one process the normal registry is used.

Recording is on the hot path, so the two figures every request adds to (requests and their duration, solver turns
and theirs) are tallied in plain dicts (`_Tally`, a tenth of the cost of prometheus_client's locked values) and
handed to prometheus_client before `/metrics` answers; with `--workers`, also within `FLUSH_SECONDS` of being
recorded, since another worker may answer the scrape. Label children are looked up once and kept (`_child`).
"""

from __future__ import annotations

import asyncio
import bisect
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# With --workers, how stale another worker's scrape may find this worker's tallies.
FLUSH_SECONDS = 1.0
CONTENT_TYPE = CONTENT_TYPE_LATEST
# More personas than this in one process is a misconfiguration; past it, names share the label "other".
MAX_PERSONA_LABELS = 100
NO_PERSONA = "none"
OTHER = "other"

REQUESTS = Counter("persona_server_requests", "HTTP requests answered, by route template, method, status and persona",
                   ["route", "method", "status", "persona"])
REQUEST_SECONDS = Histogram("persona_server_request_duration_seconds",
                            "Time from a request's arrival until its response was sent in full (streams: to their end)",
                            ["route", "method"])
# Its `_count` is the number of turns by outcome: a separate counter would cost the hot path another update.
SOLVER_SECONDS = Histogram("persona_server_solver_duration_seconds",
                           "Solver turns by outcome (answer, miss, error, timeout) and the time each took until its "
                           "outcome (an answer: until its first text)",
                           ["persona", "solver", "outcome"])
OPEN_STREAMS = Gauge("persona_server_open_streams", "Streamed responses (SSE or NDJSON) being sent now",
                     multiprocess_mode="livesum")
REFUSED = Counter("persona_server_refused",
                  "Requests refused by a limit or a check (api_key, unknown_model, body_size, ...)", ["limit"])


class RequestRecord:
    """What the code handling one request tells the metrics about it (see `current`)."""

    __slots__ = ("persona", "refused")

    def __init__(self) -> None:
        self.persona: str | None = None
        self.refused: str | None = None


# The record of the request being handled; set by the HTTP layer (api/observe.py), copied into its tasks.
current: ContextVar[RequestRecord | None] = ContextVar("metrics_request", default=None)

_children: dict[tuple[Any, ...], Any] = {}
_personas: set[str] = set()


def _child(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def _persona_label(name: str) -> str:
    if name in _personas:
        return name
    if len(_personas) >= MAX_PERSONA_LABELS:
        return OTHER
    _personas.add(name)
    return name


class _Tally:
    """Observations of one histogram not yet handed to prometheus_client: per label tuple, a count per bucket and
    the sum. A counter that counts the same events as the histogram (requests by status) rides along."""

    def __init__(self, histogram: Histogram, counter: Counter | None = None) -> None:
        self.histogram = histogram
        self.counter = counter
        self.bounds = histogram._upper_bounds  # the bucket bounds, +Inf last
        # label tuple -> [sum, count in bucket 0, 1, ...]
        self.pending: dict[tuple[str, ...], list[float]] = {}
        self.counted: dict[tuple[str, ...], int] = {}

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        entry = self.pending.get(labels)
        if entry is None:
            entry = self.pending[labels] = [0.0] * (len(self.bounds) + 1)
            _schedule_flush()
        entry[0] += seconds
        entry[1 + bisect.bisect_left(self.bounds, seconds)] += 1

    def count(self, labels: tuple[str, ...]) -> None:
        self.counted[labels] = self.counted.get(labels, 0) + 1

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        for labels, entry in pending.items():
            child = _child(self.histogram, *labels)
            # prometheus_client has no call to add many observations at once: its per-bucket values take them.
            child._sum.inc(entry[0])
            for index, count in enumerate(entry[1:]):
                if count:
                    child._buckets[index].inc(count)
        counted, self.counted = self.counted, {}
        if self.counter is not None:
            for labels, count in counted.items():
                _child(self.counter, *labels).inc(count)


_REQUESTS = _Tally(REQUEST_SECONDS, REQUESTS)
_TURNS = _Tally(SOLVER_SECONDS)
_flush_timer: asyncio.TimerHandle | None = None


def _schedule_flush() -> None:
    """With --workers, hand the tallies over soon: a scrape answered by another worker reads shared files."""
    global _flush_timer
    if _flush_timer is None and os.environ.get(MULTIPROC_ENV):
        try:
            _flush_timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, flush)
        except RuntimeError:
            flush()  # no event loop: at once


def flush() -> None:
    """Hand every tally to prometheus_client."""
    global _flush_timer
    _flush_timer = None
    _REQUESTS.flush()
    _TURNS.flush()


def record_refusal(limit: str) -> None:
    """Count a request refused by `limit` (a short fixed name from the code, never a client's value)."""
    _child(REFUSED, limit).inc()
    record = current.get()
    if record is not None:
        record.refused = limit


def solver_turn(persona: str, solver: str, outcome: str, seconds: float) -> None:
    """One solver's turn in a chain ended with `outcome`: answer, miss, error or timeout."""
    label = _persona_label(persona)
    _TURNS.observe((label, solver, outcome), seconds)
    record = current.get()
    if record is not None:
        record.persona = label


def request_done(route: str, method: str, status: int, record: RequestRecord, seconds: float) -> None:
    persona = record.persona
    if persona is None:
        persona = OTHER if record.refused == "unknown_model" else NO_PERSONA
    _REQUESTS.count((route, method, str(status), persona))
    _REQUESTS.observe((route, method), seconds)


def exposition() -> bytes:
    """The metrics in Prometheus text format: this process's, or every worker's summed in multiprocess mode."""
    flush()
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


@contextmanager
def multiprocess_dir() -> Iterator[None]:
    """For `--workers N`: a fresh temporary PROMETHEUS_MULTIPROC_DIR for the workers (inherited through the
    environment), removed afterwards. A directory the operator set already is used as it is, and kept."""
    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    path = tempfile.mkdtemp(prefix="persona-server-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def process_exit() -> None:
    """A worker shutting down: its tallies are handed over, its open-streams gauge no longer counts in the sum."""
    flush()
    if os.environ.get(MULTIPROC_ENV):
        _multiprocess.mark_process_dead(os.getpid())
