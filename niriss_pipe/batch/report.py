"""``batch report DIR``: the batch as one self-contained HTML page (``DIR/report.html``): the
state of every task in colour, times and hosts, the calibration versions and CRDS contexts of
the products, the references they used, a thumbnail of each product (embedded: the page
needs nothing else to show them) linking to its full preview, and the error line and log of
each failure. Links to logs and previews are relative, so the folder can be copied whole.
"""

from __future__ import annotations

import base64
import datetime
import os
from collections import Counter
from pathlib import Path
from urllib.parse import quote

from niriss_pipe import __version__
from niriss_pipe.batch import state as batchstate
from niriss_pipe.batch.plan import Plan
from niriss_pipe.batch.products import Product, task_product
from niriss_pipe.batch.summary import last_error, slurm_message
from niriss_pipe.core import templates
from niriss_pipe.core.atomic import write_text

REPORT_FILE = "report.html"
# State colours: the same in the summary bar, the legend and each task's state cell.
COLOURS = {"completed": "#1a9850", "failed": "#d73027", "killed": "#f46d43", "lost": "#762a83",
           "running": "#4575b4", "pending": "#bababa"}


def _thumbnail(path: Path | None) -> str:
    """A PNG as a data: URL, so the page carries its thumbnails."""
    if path is None:
        return ""
    try:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return ""


def _link(path: Path | None, page_folder: Path) -> str:
    """A relative, URL-quoted link from the page to ``path``."""
    if path is None:
        return ""
    return quote(os.path.relpath(path, page_folder).replace(os.sep, "/"))


def _row(plan: Plan, status: batchstate.TaskStatus, product: Product | None,
         page_folder: Path) -> dict:
    bad = status.state in batchstate.FINISHED_BAD
    error = ""
    if bad:
        error = (slurm_message(plan, status) if status.state != "failed" else "") or \
            last_error(status.log) or status.reason
    return {
        "index": status.index, "input": status.name, "state": status.state,
        "colour": COLOURS.get(status.state, "#000000"),
        "exit": "" if status.exit is None else status.exit,
        "seconds": "" if status.seconds is None else f"{status.seconds:.1f} s",
        "host": status.host, "job": status.job, "reason": status.reason if bad else "",
        "cal_ver": product.cal_ver if product else "",
        "context": product.context if product else "",
        "steps": ", ".join(f"{n} {k.lower()}" for k, n in sorted(product.steps.items()))
        if product else "",
        "product": product.path.name if product else "",
        "product_link": _link(product.path if product else None, page_folder),
        "thumbnail": _thumbnail(product.thumbnail if product else None),
        "preview_link": _link(product.preview if product else None, page_folder),
        "error": error, "bad": bad,
        "log_link": _link(status.log, page_folder) if status.log.is_file() else "",
        "log": os.path.relpath(status.log, plan.folder),
    }


def _summary_bar(statuses: list[batchstate.TaskStatus]) -> list[dict]:
    tally = batchstate.counts(statuses)
    total = max(1, len(statuses))
    return [{"state": state, "count": tally[state], "colour": COLOURS[state],
             "percent": f"{100.0 * tally[state] / total:.4f}"}
            for state in batchstate.STATES if tally[state]]


def _references(products: list[Product]) -> list[dict]:
    """Each reference file the products used, by keyword, with how many used it."""
    used = Counter((key, name) for product in products
                   for key, name in product.references.items())
    return [{"keyword": key, "file": name, "products": count}
            for (key, name), count in sorted(used.items())]


def render_report(plan: Plan, statuses: list[batchstate.TaskStatus],
                  page_folder: Path | None = None) -> str:
    page_folder = page_folder or plan.folder
    products = {s.index: task_product(plan, plan.task(s.index)) for s in statuses}
    found = [p for p in products.values() if p is not None]
    rows = [_row(plan, s, products[s.index], page_folder) for s in statuses]
    jobs = ", ".join(job for s in plan.submissions
                     for job in batchstate.submission_jobs(s)) or ", ".join(
        s["job"] for s in plan.submissions) or "none"
    env = templates.environment(trim=True, html=True)
    return env.get_template("report.html.j2").render(
        plan=plan, rows=rows, bar=_summary_bar(statuses), colours=COLOURS,
        summary=batchstate.summary(statuses), failures=[r for r in rows if r["bad"]],
        versions=sorted(Counter(p.cal_ver or "?" for p in found).items()),
        contexts=sorted(Counter(p.context or "?" for p in found).items()),
        references=_references(found), jobs=jobs, version=__version__,
        products=len(found), previews=sum(1 for r in rows if r["thumbnail"]),
        generated=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        parameters=[str(p) for p in plan.parameters])


def write_report(plan: Plan, statuses: list[batchstate.TaskStatus],
                 output: Path | None = None) -> Path:
    """Write the page (atomically) to ``output`` or DIR/report.html; return its path."""
    path = Path(os.path.abspath(output)) if output else plan.folder / REPORT_FILE
    write_text(path, render_report(plan, statuses, path.parent))
    return path
