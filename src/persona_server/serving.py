"""Running uvicorn so that SIGTERM ends the server cleanly, in one process or with `--workers N`.

On SIGTERM (or SIGINT) the server stops accepting connections and gives the answers in flight
`--graceful-timeout` seconds to finish; then it cancels the rest (their streams end, their upstream requests are
closed: see `cleanup`) and exits with status 0. A second signal exits at once. uvicorn alone ignores a second
SIGTERM, and re-raises the first one after its shutdown, so the process dies by the signal instead of exiting 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.main import STARTUP_FAILURE
from uvicorn.supervisors import multiprocess

log = logging.getLogger(__name__)


class GracefulServer(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded for re-raising (see the module docstring): the shutdown itself is the whole answer.
        if self.should_exit:
            log.warning("second %s: exiting now", signal.Signals(sig).name)
            self.force_exit = True
        self.should_exit = True


class _WorkerProcess(multiprocess.Process):
    """A `--workers` child that runs a GracefulServer (unpickled in the child by this qualified name)."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = GracefulServer(config=self.config)
        return self._server


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _Supervisor(multiprocess.Multiprocess):
    # Stop signals handled so far. uvicorn reads its signal queue only every 0.5 s, so a second signal can be
    # handled in the same batch as the first: counting them keeps it from being lost.
    _stops = 0

    def handle_signals(self) -> None:
        self._stops += sum(1 for sig in self.signal_queue if sig in _STOP_SIGNALS)
        super().handle_signals()

    def join_all(self) -> None:
        # uvicorn only queues signals while it waits for its workers: a second one is passed on to them, each of
        # which then exits at once.
        forwarded = False
        for process in self.processes:
            while process.process.is_alive():
                process.process.join(0.1)
                if (self.signal_queue or self._stops > 1) and not forwarded:
                    forwarded = True
                    log.warning("second signal: telling the workers to exit now")
                    for worker in self.processes:
                        if worker.process.is_alive() and worker.pid is not None:
                            with contextlib.suppress(ProcessLookupError):
                                os.kill(worker.pid, signal.SIGTERM)


@contextlib.contextmanager
def _graceful_workers() -> Iterator[None]:
    # Multiprocess creates its workers from the module's `Process` in four places (start, restart, replace,
    # add one): point that name at ours while the supervisor runs.
    original = multiprocess.Process
    multiprocess.Process = _WorkerProcess  # type: ignore[misc]
    try:
        yield
    finally:
        multiprocess.Process = original  # type: ignore[misc]


def run(app: Any, *, graceful_timeout: float, **options: Any) -> int:
    """`uvicorn.run(app, **options)` with the shutdown described above; `app` is an import string with workers.

    Returns the exit status: 0, or uvicorn's 3 when the server could not start (a port in use, say).
    """
    config = uvicorn.Config(app, timeout_graceful_shutdown=graceful_timeout, **options)
    if config.workers > 1:
        sock = config.bind_socket()
        with _graceful_workers():
            _Supervisor(config, sockets=[sock]).run()
        return 0
    server = GracefulServer(config)
    server.run()
    return 0 if server.started else STARTUP_FAILURE
