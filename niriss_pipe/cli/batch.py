"""``batch submit|status|wait|retry|cancel``: one pipeline over many exposures, as SLURM job
arrays or local workers. The batch layer says how a command ended (an Outcome); this module
alone turns that into the exit code.

Library modules are imported inside the handler (see cli/images.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from niriss_pipe.batch.outcome import Outcome
from niriss_pipe.batch.plan import RUNTIME_ALIASES, RUNTIMES
from niriss_pipe.cli.defaults import CACHE_HELP, default_cache
from niriss_pipe.cli.output import emit
from niriss_pipe.core.progress import Reporter

EXIT_CODES = {
    Outcome.COMPLETED: 0, Outcome.SUBMITTED: 0, Outcome.PLANNED: 0, Outcome.CANCELLED: 0,
    Outcome.REPORTED: 0,
    Outcome.FAILED: 1,       # some task failed, was killed or lost
    Outcome.GOING: 3,        # still going (wait --timeout gave up), none failed yet
    Outcome.INTERRUPTED: 130,
}


def exit_code(outcome: Outcome) -> int:
    return EXIT_CODES[outcome]


def add_parsers(sub, parents) -> None:
    common, as_json = parents.common, parents.json
    batch = sub.add_parser("batch", parents=[common],
                           help="run a pipeline over many exposures: SLURM job array or local "
                           "workers; status, wait, retry, cancel, report")
    actions = batch.add_subparsers(dest="action", required=True, metavar="ACTION")
    workers = argparse.ArgumentParser(add_help=False)
    workers.add_argument("--local", action="store_true",
                         help="run the tasks on this machine instead of submitting to SLURM")
    workers.add_argument("-j", "--jobs", default=2, metavar="N",
                         help="parallel tasks with --local (default: 2)")
    workers.add_argument("--dry-run", action="store_true",
                         help="print the scripts and the sbatch command; write and run nothing")
    p = actions.add_parser("submit", parents=[common, workers, as_json],
                           help="write the batch folder and submit its job array")
    p.add_argument("image", metavar="IMAGE",
                   help="docker: a tag or id; podman: a docker-archive/OCI file or a podman "
                   "image; charliecloud: an exported dir or .sqfs; apptainer: a .sif")
    p.add_argument("pipeline", metavar="PIPELINE",
                   help="strun alias or class (calwebb_detector1, calwebb_image2, ...), or a "
                   "strun parameter file (.asdf), mounted read-only into every task")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="exposure files, globs (quoted) or @LIST files (one path per line)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                   help="the batch folder (new or empty): scripts, logs/, state/, products/")
    p.add_argument("--cache", type=Path, default=default_cache(),
                   help=f"the shared CRDS cache, mounted read-only {CACHE_HELP}")
    p.add_argument("--runtime", default="docker", choices=(*RUNTIMES, *RUNTIME_ALIASES),
                   help="docker (default), podman, charliecloud or apptainer (singularity is "
                   "the same)")
    p.add_argument("--context", metavar="PMAP",
                   help="CRDS context other than the image's own (e.g. jwst_9999.pmap, the "
                   "synthetic one)")
    p.add_argument("--strun-arg", action="append", default=[], metavar="ARG",
                   help="extra strun argument, repeatable (e.g. --strun-arg=--steps.jump."
                   "rejection_threshold=5); a .asdf file it names is mounted read-only")
    p.add_argument("--no-preview", action="store_true",
                   help="do not write a PNG preview of each rate product (saves a container "
                   "start per task)")
    p.add_argument("--parsable", action="store_true",
                   help="print only the SLURM job ids, ':'-separated, for sbatch "
                   "--dependency=afterok:IDS (progress goes to stderr)")
    p.add_argument("--partition", help="#SBATCH --partition (one, or a comma-separated list)")
    p.add_argument("--account", help="#SBATCH --account to charge")
    p.add_argument("--qos", help="#SBATCH --qos")
    p.add_argument("--time", help="#SBATCH --time per task, e.g. 01:00:00")
    p.add_argument("--mem", help="#SBATCH --mem per task, e.g. 8G")
    p.add_argument("--cpus", default=1, metavar="N",
                   help="#SBATCH --cpus-per-task (default: 1)")
    p.add_argument("--throttle", metavar="N", help="at most N tasks at once (--array=...%%N)")
    p.add_argument("--job-name", default="niriss-pipe", help="#SBATCH --job-name")
    p.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                   help="an extra #SBATCH option, repeatable, its value attached "
                   "(e.g. --sbatch=--constraint=haswell); not those the batch sets")
    p.set_defaults(handler=run)
    p = actions.add_parser("status", parents=[common, as_json],
                           help="each task's state and a summary")
    p.add_argument("folder", type=Path, metavar="DIR")
    p.set_defaults(handler=run)
    p = actions.add_parser("wait", parents=[common],
                           help="wait until every task has ended, then report as status")
    p.add_argument("folder", type=Path, metavar="DIR")
    p.add_argument("--timeout", metavar="SECONDS",
                   help="give up waiting after this long, exit 3 (the jobs keep running); "
                   "0 or more, 0 looks once")
    p.set_defaults(handler=run)
    p = actions.add_parser("retry", parents=[common, workers],
                           help="resubmit only the tasks that failed, were killed or lost")
    p.add_argument("folder", type=Path, metavar="DIR")
    p.set_defaults(handler=run)
    p = actions.add_parser("cancel", parents=[common],
                           help="scancel the batch's jobs; tasks stop their containers")
    p.add_argument("folder", type=Path, metavar="DIR")
    p.set_defaults(handler=run)
    p = actions.add_parser("report", parents=[common],
                           help="write DIR/report.html: states, times, hosts, versions, "
                           "references, a preview per product, the error of each failure")
    p.add_argument("folder", type=Path, metavar="DIR")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="write the page here instead (default: DIR/report.html)")
    p.set_defaults(handler=run)


def run(args, reporter: Reporter) -> int:
    from niriss_pipe.batch import service

    if args.action == "submit":
        from niriss_pipe.batch.plan import SlurmOptions

        request = service.BatchRequest(
            image=args.image, pipeline=args.pipeline, inputs=tuple(args.inputs),
            output=args.output, cache=args.cache, runtime=args.runtime, context=args.context,
            strun_args=tuple(args.strun_arg), preview=not args.no_preview,
            slurm=SlurmOptions(partition=args.partition, account=args.account, qos=args.qos,
                               time=args.time, mem=args.mem, cpus=args.cpus,
                               throttle=args.throttle, extra=tuple(args.sbatch),
                               job_name=args.job_name))
        outcome = service.submit(request, reporter, local=args.local, workers=args.jobs,
                                 dry_run=args.dry_run)
        if not args.dry_run and (args.json or args.parsable):
            _submitted(args, service.submission_document(args.output, outcome))
    elif args.action == "status":
        if args.json:
            document, outcome = service.status_document(args.folder, reporter)
            emit(document)
        else:
            outcome = service.status(args.folder, reporter)
    elif args.action == "report":
        outcome = service.report_page(args.folder, reporter, output=args.output)
    elif args.action == "wait":
        outcome = service.wait(args.folder, reporter, timeout=args.timeout)
    elif args.action == "retry":
        outcome = service.retry(args.folder, reporter, local=args.local, workers=args.jobs,
                                dry_run=args.dry_run)
    else:
        outcome = service.cancel(args.folder, reporter)
    return exit_code(outcome)


def _submitted(args, document: dict) -> None:
    """--parsable: the job ids alone (one line, ':'-separated, as afterok:ID:ID takes them);
    --json: the whole submission."""
    if args.parsable:
        print(":".join(document["jobs"]), flush=True)
    else:
        emit(document)
