"""Whether this process was asked to stop (SIGTERM, SIGINT), whoever handles the signal.

rq installs handlers of its own (the worker, its scheduler, `rq cron`) whose flags we cannot see,
and a client that waits for Redis for ever (jobs/worker.py PatientRedis) would keep a stopping
process waiting on a Redis that is down, past any supervisor's patience. The interpreter writes
the number of every signal that has a Python handler to its wakeup fd (`signal.set_wakeup_fd`),
whichever handler that is: reading that pipe tells the waiting client to give up.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})

_read_fd: int | None = None
_watching_pid: int | None = None
_stopping = False
_fork_hook_set = False


def watch() -> None:
    """Start watching (from the main thread; elsewhere a no-op). A forked child watches its own
    pipe: it must not read its parent's signals, nor its parent its own."""
    global _read_fd, _watching_pid, _stopping, _fork_hook_set  # noqa: PLW0603 - one per process
    if _watching_pid == os.getpid() or threading.current_thread() is not threading.main_thread():
        return
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    _read_fd, _watching_pid, _stopping = read, os.getpid(), False
    if not _fork_hook_set:
        _fork_hook_set = True
        os.register_at_fork(after_in_child=watch)


def requested(wait_seconds: float = 0.0) -> bool:
    """True once a stop signal has arrived; waits up to `wait_seconds` for one (a plain sleep
    when this process is not watching)."""
    global _stopping  # noqa: PLW0603 - one per process
    deadline = time.monotonic() + wait_seconds
    while not _stopping:
        left = deadline - time.monotonic()
        if _read_fd is None or _watching_pid != os.getpid():
            time.sleep(max(0.0, left))
            return False
        ready, _, _ = select.select([_read_fd], [], [], max(0.0, left))
        if not ready:
            return False
        try:
            numbers = os.read(_read_fd, 1024)
        except BlockingIOError:
            numbers = b""
        _stopping = any(number in STOP_SIGNALS for number in numbers)
    return True
