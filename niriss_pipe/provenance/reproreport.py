"""The ``reproduce`` report: a short markdown file with the pictures, and the lines printed.

It says what was run (image, jwst, context, the strun commands) and, per extension, how the
new product differs from the given one: bit for bit, within the tolerances, the largest
difference, DQ per bit, and the provenance keywords that differ.
"""

from __future__ import annotations

import json
from pathlib import Path

from niriss_pipe.core.atomic import write_text
from niriss_pipe.core.grammar import one_line
from niriss_pipe.runtime.contract import label

REPORT = "report.md"
ANSWER = "comparison.json"


def image_jwst(labels: dict) -> str:
    """What an image's labels say its jwst is: the PyPI version, or the git ref (commit)."""
    version = labels.get(label("jwst.version"))
    if version:
        return version
    ref = labels.get(label("jwst.ref")) or "?"
    commit = labels.get(label("jwst.commit"))
    return f"{ref} (git {commit[:12]})" if commit else f"{ref} (git)"


def _cell(value) -> str:
    return one_line(str(value)).replace("|", "\\|")


def _difference(row: dict) -> str:
    if row.get("note") and "differing" not in row:
        return row["note"]
    if row["kind"] == "table":
        return ("identical" if row["identical"] else
                f"{row['differing'] if row['differing'] is not None else '?'} of {row['rows']} "
                "rows differ")
    if row["identical"]:
        return "identical"
    text = f"{row['differing']} of {row['pixels']} pixels differ"
    if row["kind"] == "image":
        text += f"; largest {row['max_abs']:.6g}" if isinstance(row["max_abs"], float) else \
            f"; largest {row['max_abs']}"
        text += f" (relative {row['max_rel']:.3g})" if isinstance(row["max_rel"], float) else ""
        text += f"; {row['outside']} beyond the tolerance" if row["outside"] else \
            "; all within the tolerance"
        if row.get("nan_only_one"):
            text += f"; {row['nan_only_one']} NaN in one product only"
    if row.get("note"):
        text += f" ({row['note']})"
    return text


def bit_lines(row: dict) -> list[str]:
    """``bit 2 (JUMP_DET, 4): 1 pixel (set in new only)`` per DQ bit that differs."""
    lines = []
    for bit in row.get("bits", []):
        where = []
        if bit["only_new"]:
            where.append(f"{bit['only_new']} set in new only")
        if bit["only_given"]:
            where.append(f"{bit['only_given']} set in given only")
        name = f"{bit['name']}, " if bit["name"] else ""
        plural = "" if bit["count"] == 1 else "s"
        lines.append(f"{row['extension']} bit {bit['bit']} ({name}{bit['value']}): "
                     f"{bit['count']} pixel{plural} ({'; '.join(where)})")
    return lines


def summary_lines(answer: dict, report: Path) -> list[str]:
    """What the command prints: one line per extension that differs, the verdict, the report."""
    comparison = answer["comparison"]
    lines = []
    for row in comparison["extensions"]:
        if row["identical"]:
            continue
        lines.append(f"  {row['extension']:<12} {_difference(row)}")
        lines += [f"    {line}" for line in bit_lines(row)]
    for item in comparison["provenance"]:
        note = " (informational)" if item["informational"] else ""
        lines.append(f"  {item['key']:<12} given {item['given']}, new {item['new']}{note}")
    compared = [r for r in comparison["extensions"] if r["kind"] not in ("not compared",)]
    verdict = comparison["verdict"]
    tolerance = (f" (rtol {comparison['rtol']}, atol {comparison['atol']})"
                 if verdict != "identical" else "")
    lines.append(f"{verdict}{tolerance}: {len(compared)} extensions compared; report {report}")
    return lines


def write_report(out: Path, request, product, image: str, info, answer: dict,
                 seconds: float) -> Path:
    comparison = answer["comparison"]
    rows = ["| extension | kind | shape | bit for bit | difference |", "|---|---|---|---|---|"]
    for row in comparison["extensions"]:
        shape = "x".join(str(n) for n in row.get("shape", [])) or "-"
        same = "identical" if row["identical"] else "differs"
        rows.append(f"| {_cell(row['extension'])} | {row['kind']} | {shape} | {same} | "
                    f"{_cell(_difference(row))} |")
    bits = [line for row in comparison["extensions"] for line in bit_lines(row)]
    provenance = [f"| {_cell(p['key'])} | {_cell(p['given'])} | {_cell(p['new'])} | "
                  f"{'informational' if p['informational'] else 'differs'} |"
                  for p in comparison["provenance"]]
    commands = "\n".join(" ".join(command) for command in answer["commands"])
    pictures = "\n".join(f"![{name}]({name})" for name in answer.get("pictures", []))
    text = "\n".join([
        f"# Reproducing {_cell(request.product.name)}",
        "",
        f"**{comparison['verdict']}** (rtol {comparison['rtol']}, atol {comparison['atol']}).",
        "",
        f"- given: `{_cell(request.product)}`, made with jwst {product.cal_ver}, "
        f"{product.crds_ctx}" + (f", crds {product.crds_ver}" if product.crds_ver else ""),
        f"- input: `{_cell(request.input)}`",
        f"- image: `{_cell(image)}` ({info.id[7:19]}), jwst {_cell(image_jwst(info.labels))}",
        f"- cache: `{_cell(request.cache)}`, {len(product.reference_names)} references named "
        "by the product's R_* keywords, all present",
        f"- new product: `{_cell(answer.get('new_product'))}`; took {seconds:.1f} s "
        f"(pipeline {answer['seconds'].get('pipeline', '?')} s, comparison "
        f"{answer['seconds'].get('compare', '?')} s)",
        "",
        "Run in the image, offline, with CRDS_CONTEXT=" + product.crds_ctx + ":",
        "",
        "```",
        commands,
        "```",
        "",
        "## Extensions",
        "",
        *rows,
        "",
        *(["## DQ bits that differ", "", *[f"- {line}" for line in bits], ""] if bits else []),
        "## Provenance keywords",
        "",
        *(["| keyword | given | new | |", "|---|---|---|---|", *provenance] if provenance
          else ["CAL_VER, CRDS_CTX, CRDS_VER, every R_* and S_*: the same."]),
        "",
        *(["## Pictures", "", pictures, ""] if pictures else []),
    ])
    write_text(out / ANSWER, json.dumps(answer, indent=1, sort_keys=True) + "\n")
    path = out / REPORT
    write_text(path, text + "\n")
    return path
