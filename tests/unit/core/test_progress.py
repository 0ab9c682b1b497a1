"""Progress output: what a failure shows, what a running stage shows (on a terminal and in a
log), the log file, and download lines."""

from __future__ import annotations

import io
import threading
import time

from niriss_pipe.core.progress import (
    Reporter,
    StageClock,
    TransferProgress,
    failure_excerpt,
    human_duration,
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def wait_for(predicate, timeout: float = 10.0) -> bool:
    """Poll until ``predicate()`` holds (the ticker runs in its own thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_failure_excerpt_starts_at_the_error_report():
    log = ["Collecting numpy"] * 50 + ["ERROR: THESE PACKAGES DO NOT MATCH THE HASHES"] + [
        "    Expected sha256 0000"] * 40
    excerpt = failure_excerpt(log)
    assert excerpt[0].startswith("ERROR: THESE PACKAGES") and excerpt[-1] == "..."
    assert len(excerpt) == 26
    assert failure_excerpt(["a", "b", "c"], at_most=2) == ["b", "c"]


def test_a_running_stage_updates_one_line_on_a_terminal():
    out = Terminal()
    clock = StageClock(Reporter(out=out), tty_every=0.02)
    clock.enter("jwst")
    assert wait_for(lambda: out.getvalue().count("\r  jwst") >= 3), out.getvalue()
    clock.step_ran()
    clock.finish()
    text = out.getvalue()
    assert "\n" not in text.rsplit("\r", 1)[0]  # the updates never started new lines
    assert text.rstrip("\n").endswith(" s") and text.endswith("\n")
    final = text.rsplit("\r", 1)[1]
    assert final.startswith("  jwst") and "..." not in final  # the live line was cleared
    before = out.getvalue()
    time.sleep(0.1)
    assert out.getvalue() == before  # nothing ticks after the stage ended


def test_a_running_stage_says_so_every_so_often_in_a_log():
    out = io.StringIO()
    clock = StageClock(Reporter(out=out), plain_every=0.05)
    clock.enter("python-env")
    assert wait_for(lambda: out.getvalue().count("still running after") >= 2), out.getvalue()
    clock.fail()
    lines = out.getvalue().splitlines()
    assert all(line.startswith("  python-env     still running after ") for line in lines[:-1])
    assert lines[-1].startswith("  python-env     FAILED after ")
    assert "\r" not in out.getvalue()


def test_no_ticking_with_the_full_log_and_after_close():
    out = Terminal()
    clock = StageClock(Reporter(verbose=True, out=out), tty_every=0.01)
    clock.enter("jwst")
    time.sleep(0.1)
    assert out.getvalue() == ""  # -v: the log lines themselves show progress
    quiet = Terminal()
    clock = StageClock(Reporter(out=quiet), tty_every=0.01)
    clock.enter("runtime")
    assert wait_for(lambda: "\r  runtime" in quiet.getvalue())
    clock.close()  # the build stopped (Ctrl-C, a lost engine): no final line, nothing left
    after = quiet.getvalue()
    time.sleep(0.05)
    assert quiet.getvalue() == after and after.endswith("\r")
    assert threading.active_count() < 20


def test_lines_said_meanwhile_clear_the_live_line_first():
    out = Terminal()
    reporter = Reporter(out=out, err=out)
    reporter.live("  jwst   12.0 s ...")
    reporter.warn("the lock is old")
    assert out.getvalue() == ("\r  jwst   12.0 s ..." + "\r" + " " * 19 + "\r"
                              + "warning: the lock is old\n")


def test_the_log_file_gets_every_line_whatever_the_screen_shows(tmp_path):
    out = io.StringIO()
    reporter = Reporter(out=out)
    log = tmp_path / "logs" / "default.log"
    with reporter.logging_to(log):
        assert reporter.log_path == log
        reporter.say("building niriss-pipe:jwst_1584")
        reporter.detail("Step 1/23 : FROM base")
        reporter.detail("\x1b[91mpip output\x1b[0m")
        reporter.warn("careful")
    reporter.say("after")
    assert reporter.log_path is None
    assert log.read_text() == ("building niriss-pipe:jwst_1584\nStep 1/23 : FROM base\n"
                               "pip output\nwarning: careful\n")
    assert "Step 1/23" not in out.getvalue()  # not verbose: the screen shows stages only


def test_download_lines_show_percent_and_time_left_and_update_in_place():
    out = Terminal()
    progress = TransferProgress(Reporter(out=out), "references", files=2, total=1000)
    progress.last -= 1
    progress.add(nbytes=250)
    assert out.getvalue().startswith("\r  references 0/2 files  250 B/1000 B (25 %)  ")
    assert out.getvalue().endswith(" left")
    progress.close()
    assert out.getvalue().endswith("\r")
    assert progress.line(10.0).endswith("25 B/s  30 s left")
    empty = TransferProgress(Reporter(out=io.StringIO()), "refs", files=1, total=10)
    assert empty.line(1.0).endswith("0 B/s  time left unknown")


def test_durations_read_as_people_say_them():
    assert [human_duration(s) for s in (0.4, 7, 59.6, 185, 3600, 7300)] == [
        "0 s", "7 s", "1 min 00 s", "3 min 05 s", "1 h 00 min", "2 h 01 min"]
