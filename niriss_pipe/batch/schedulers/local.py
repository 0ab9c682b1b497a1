"""Run batch tasks on this machine with N parallel workers: the same task.sh a SLURM array
task runs, with the same logs, state records and products; for a workstation without SLURM.

Ctrl-C sends SIGTERM to the running task scripts, whose trap stops their containers (as
scancel does under SLURM), and waits for them. ``batch cancel`` (SIGINT) and ``kill PID``
(SIGTERM) do the same, also to a run started as ``nohup ... &`` from a script, which begins
with SIGINT ignored.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from niriss_pipe.batch.outcome import Outcome
from niriss_pipe.batch.plan import TASK_SCRIPT, Plan, load_plan, save_plan
from niriss_pipe.batch.scripts import array_spec
from niriss_pipe.batch.state import local_runner_alive
from niriss_pipe.batch.summary import report
from niriss_pipe.core.progress import Reporter, short_path
from niriss_pipe.core.signals import stoppable


class LocalRunner:
    def __init__(self, plan: Plan, job: str, workers: int, reporter: Reporter):
        self.plan, self.job, self.workers, self.reporter = plan, job, workers, reporter
        self.running: dict[int, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.stopping = False
        self.done = 0

    def run(self, indices: list[int]) -> None:
        """Run the tasks; each records its outcome in state/INDEX."""
        total = len(indices)
        self.reporter.say(f"running {total} tasks here, {self.workers} at a time "
                          f"(logs in {self.plan.folder}/logs/)")
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="task")
        futures = [pool.submit(self._one, index, total) for index in indices]
        try:
            for future in futures:
                future.result()
        except KeyboardInterrupt:
            self.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    def stop(self) -> None:
        """SIGTERM to every running task script: each stops its container and records it."""
        with self.lock:
            self.stopping = True
            procs = list(self.running.values())
        self.reporter.say(f"stopping {len(procs)} running tasks (their containers too)")
        for proc in procs:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs:
            proc.wait()

    def _one(self, index: int, total: int) -> int:
        with self.lock:
            if self.stopping:
                return 130
        task = self.plan.task(index)
        log = self.plan.folder / "logs" / f"{index}.log"
        env = {**os.environ, "NIRISS_PIPE_JOB": self.job}
        for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_JOB_ID", "NIRISS_PIPE_INDEX_OFFSET"):
            env.pop(name, None)
        started = time.monotonic()
        with open(log, "ab") as out:
            proc = subprocess.Popen(["bash", str(self.plan.folder / TASK_SCRIPT), str(index)],
                                    stdout=out, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)  # Ctrl-C reaches us, not it
            with self.lock:
                self.running[index] = proc
            code = proc.wait()
            with self.lock:
                del self.running[index]
                self.done += 1
                done = self.done
        outcome = "ok" if code == 0 else f"FAILED (exit {code}, {short_path(log)})"
        self.reporter.say(f"  [{done}/{total}] task {index} {task.name}: {outcome} "
                          f"{time.monotonic() - started:.1f} s")
        return code


class LocalScheduler:
    """N workers on this machine, each running task.sh INDEX; the run is seen from other
    shells through its pid and host in batch.json, and stopped as Ctrl-C would."""

    mode = "local"

    def __init__(self, workers: int = 2):
        self.workers = workers

    def require(self) -> None:
        pass

    def plan_text(self, plan: Plan, indices: list[int]) -> str:
        return (f"# would run here: bash {plan.folder}/{TASK_SCRIPT} INDEX for INDEX in "
                f"{array_spec(indices, None)}\n")

    def launch(self, plan: Plan, indices: list[int], reporter: Reporter) -> Outcome:
        at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        job = f"local-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        plan = plan.with_submission({"mode": self.mode, "job": job, "indices": indices,
                                     "at": at, "host": socket.gethostname(),
                                     "pid": os.getpid()})
        save_plan(plan)
        runner = LocalRunner(plan, job, self.workers, reporter)
        interrupted = False
        try:
            with stoppable():
                runner.run(indices)
        except KeyboardInterrupt:
            interrupted = True
        plan = _finished(load_plan(plan.folder))
        save_plan(plan)
        result = report(plan, reporter, header=False)
        return Outcome.INTERRUPTED if interrupted else result

    def stop(self, plan: Plan, submissions: list[dict], reporter: Reporter) -> Plan:
        for submission in submissions:  # as Ctrl-C in its terminal: it stops its tasks
            if submission["mode"] == self.mode and local_runner_alive(submission):
                os.kill(int(submission["pid"]), signal.SIGINT)
                reporter.say(f"stopping the local run {submission['job']} "
                             f"(pid {submission['pid']})")
        return plan


def _finished(plan: Plan) -> Plan:
    """The plan as others will see it once this local run has returned (its process no
    longer counts as running its tasks)."""
    return replace(plan, submissions=tuple({**s, "pid": 0} if s.get("pid") == os.getpid()
                                           else s for s in plan.submissions))
