"""SIGINT and SIGTERM inside ``stoppable`` raise KeyboardInterrupt, so that the work's own
clean-up runs; outside it, the handlers are what they were (core/signals.py)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from niriss_pipe.core.signals import stoppable


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_in_the_block_is_an_interrupt_and_the_handlers_come_back(sig):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    cleaned = []
    with pytest.raises(KeyboardInterrupt):
        with stoppable():
            try:
                os.kill(os.getpid(), sig)
                for _ in range(1000):  # the handler runs between bytecodes
                    pass
            finally:
                cleaned.append(True)
    assert cleaned == [True]
    assert {s: signal.getsignal(s) for s in before} == before


def test_an_ignored_sigint_is_an_interrupt_in_the_block():
    """``nohup CMD &`` starts a process with SIGINT ignored: Python keeps it ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt):
            with stoppable():
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):
                    pass
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_outside_the_main_thread_the_block_runs_as_it_is():
    seen = []

    def work():
        with stoppable():
            seen.append(signal.getsignal(signal.SIGTERM))

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert seen == [signal.getsignal(signal.SIGTERM)]
