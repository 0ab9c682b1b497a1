"""Core: SIGINT and SIGTERM raise KeyboardInterrupt while some work lasts, so that its own
clean-up runs: a local batch run stops its tasks' containers, a build removes the partial
layer chain an interrupted ``--no-cache`` build would leave (engine/client.py)."""

from __future__ import annotations

import contextlib
import signal
import threading


@contextlib.contextmanager
def stoppable():
    """SIGINT and SIGTERM raise KeyboardInterrupt in the block, whatever they were before: a
    process started with SIGINT ignored (``nohup CMD &`` without job control) keeps it
    ignored in Python, and SIGTERM would end it at once, with nothing cleaned up. Only the
    main thread can set handlers: elsewhere the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    before = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
