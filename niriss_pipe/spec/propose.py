"""``build.py new``: write an image spec from a pmap (or a jwst release) using the release catalog.

A paper says "jwst_0579" or "jwst 1.12.5"; the catalog says which release was tested with
which context, and which Python it supports. From the pmap we take the newest release whose
regression-test context is at or below it, as STScI's operations would have run then.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from niriss_pipe.core import grammar
from niriss_pipe.core.errors import UserError, opt, shown
from niriss_pipe.runtime.contract import SYNTHETIC_SERIAL
from niriss_pipe.spec import catalog
from niriss_pipe.spec.model import SUITE_PYTHON
from niriss_pipe.spec.pypi import has_linux_wheel

PYPI_FIRST = (0, 17, 0)  # older jwst releases exist only as git tags
JWST_GIT = "https://github.com/spacetelescope/jwst"
SUITE_PREFERENCE = ("bookworm", "trixie", "bullseye")  # Debian stable, then newer, then older
COMPILERS = ("g++", "gcc", "python3-dev")


@dataclass
class Proposal:
    release: catalog.Release
    context: str
    python: str
    manager: str
    suite: str
    warnings: list[str] = field(default_factory=list)
    compilers: bool = False  # jwst (and, in its era, some dependencies) build from source

    def spec(self) -> dict:
        jwst = ({"version": self.release.tag}
                if catalog.version_tuple(self.release.tag) >= PYPI_FIRST
                else {"git": JWST_GIT, "ref": self.release.tag})
        spec = {
            "name": "niriss-pipe",
            "crds": {"context": self.context, "references": "mount"},
            "jwst": jwst,
            "python": {"version": self.python, "manager": self.manager},
            "base": {"suite": self.suite, "mirror": "http://deb.debian.org/debian",
                     "variant": "minbase"},
        }
        if self.compilers:
            spec["packages"] = {"apt": list(COMPILERS)}
        return spec


def _serial(pmap: str) -> int:
    match = grammar.PMAP_STEM.fullmatch(pmap) if isinstance(pmap, str) else None
    if not match:
        raise UserError(f"{shown(pmap)} is not a CRDS pipeline context.",
                        "give a pmap like jwst_0579 or jwst_0579.pmap.")
    return int(match.group(1))


def for_pmap(pmap: str) -> Proposal:
    """The newest release whose tested context is at or below ``pmap``, with that pmap."""
    serial = _serial(pmap)
    context = f"jwst_{serial:04d}.pmap"
    tested = [r for r in catalog.releases().values() if r.crds_context]
    fitting = [r for r in tested if _serial(r.crds_context) <= serial]
    if not fitting:
        oldest = min(tested, key=lambda r: _serial(r.crds_context))
        raise UserError(f"{context} is older than every catalogued release's context (the "
                        f"oldest is jwst {oldest.tag} with {oldest.crds_context}).",
                        f"give {opt('jwst')} explicitly, or a newer pmap.")
    release = max(fitting, key=lambda r: (_serial(r.crds_context),
                                          catalog.version_tuple(r.tag)))
    proposal = _with_python(release, context)
    if release.crds_context != context:
        later = [r for r in tested if _serial(r.crds_context) > serial]
        nxt = min(later, key=lambda r: _serial(r.crds_context)) if later else None
        proposal.warnings.append(
            f"{context} is not a release context: jwst {release.tag} was tested with "
            f"{release.crds_context}" + (f", jwst {nxt.tag} with {nxt.crds_context}" if nxt
                                         else "") + "; this pair was not tested by STScI.")
    return proposal


def for_jwst(tag: str, pmap: str | None = None) -> Proposal:
    """Release ``tag`` with its tested context, or with ``pmap`` when given."""
    release = catalog.release(tag)
    if release is None:
        raise UserError(f"jwst {shown(tag)} is not in the release catalog.",
                        "give a released version like 1.12.5 (see niriss_pipe/data/"
                        "jwst_releases.tsv), or write the spec by hand.")
    if not (pmap or release.crds_context):
        raise UserError(f"jwst {release.tag} has no regression-test context in the catalog "
                        "(a release candidate).", f"give {opt('pmap')} as well.")
    context = f"jwst_{_serial(pmap):04d}.pmap" if pmap else release.crds_context
    proposal = _with_python(release, context)
    if context != release.crds_context:
        proposal.warnings.append(f"jwst {release.tag} was tested with "
                                 f"{release.crds_context or 'no listed context'}, not {context}.")
    return proposal


def for_product(cal_ver: str, context: str) -> Proposal:
    """What a product was made with: jwst ``cal_ver`` and its ``context`` (CAL_VER, CRDS_CTX),
    with the warnings of ``for_pmap`` when the pair is not one STScI tested."""
    release = catalog.release(cal_ver)
    if release is None:
        dev = "dev" in cal_ver or "+" in cal_ver
        raise UserError(f"the product was made with jwst {cal_ver}, which is "
                        + ("a development build, not a release" if dev else
                           "not in the release catalog") + ".",
                        "write the spec by hand with jwst.git and jwst.ref set to the full "
                        "commit it was built from" if dev else
                        f"see {opt('list')} for the catalogued releases; write the spec by hand "
                        "(jwst.version) for a release the catalog lacks.")
    proposal = for_jwst(release.tag, context)
    serial = _serial(context)
    tested = sorted((r for r in catalog.releases().values() if r.crds_context),
                    key=lambda r: _serial(r.crds_context))
    if str(serial) == SYNTHETIC_SERIAL:
        proposal.warnings.append(f"{context} is niriss-pipe's synthetic context (the self-test's "
                                 "and the demo's), not an STScI one.")
    elif not any(r.crds_context == context for r in tested):
        later = [r for r in tested if _serial(r.crds_context) > serial]
        earlier = [r for r in tested if _serial(r.crds_context) <= serial]
        near = ", ".join(f"jwst {r.tag} with {r.crds_context}"
                         for r in (earlier[-1:] + later[:1]))
        proposal.warnings.append(f"{context} is not a release context ({near}); this pair was "
                                 "not tested by STScI (operations move to newer contexts "
                                 "between releases).")
    return proposal


def _with_python(release: catalog.Release, context: str) -> Proposal:
    """Prefer the delivery Python's minor version; a Debian suite's Python when it fits
    (venv, builds anywhere; Debian stable first), else conda-forge's."""
    wanted = ".".join(release.delivery_python.split(".")[:2]) if release.delivery_python else ""
    suites = {SUITE_PYTHON[s]: s for s in SUITE_PREFERENCE
              if release.supports_python(SUITE_PYTHON[s])}
    if wanted in suites or (not wanted and suites):
        python = wanted or next(iter(suites))
        return Proposal(release, context, python, "venv", suites[python])
    if not wanted:
        raise UserError(f"jwst {release.tag} supports no Python this tool can provide "
                        f"({release.python_requires}).", "write the spec by hand.")
    proposal = Proposal(release, context, wanted, "conda", "bookworm")
    proposal.warnings.append(f"Python {wanted} (STScI's delivery Python for jwst {release.tag}) "
                             "comes from conda-forge: the image builds only where conda-forge "
                             "is reachable.")
    return proposal


def catalog_lines() -> list[str]:
    """``new --list``: one line per catalogued release, newest first."""
    rows = [("release", "date", "context", "Python", "from")]
    for release in catalog.releases().values():
        python = release.python_requires or "?"
        if release.delivery_python:
            python += f" (delivered on {release.delivery_python})"
        source = ("PyPI" if catalog.version_tuple(release.tag) >= PYPI_FIRST else "git")
        rows.append((release.tag, release.released, release.crds_context or "-", python, source))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return [" ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + " " + row[4]
            for row in rows]


def needs_compilers(proposal: Proposal) -> bool:
    """True when PyPI has no Linux wheel of that jwst for the image's Python (or git source,
    or the index cannot be asked): pip then compiles it, and usually some of its era's
    dependencies (1.12.5 on 3.11: spherical-geometry too)."""
    if catalog.version_tuple(proposal.release.tag) < PYPI_FIRST:
        return True
    return not has_linux_wheel("jwst", proposal.release.tag, proposal.python)


def render_yaml(proposal: Proposal, note: str = "") -> str:
    """The spec's YAML; ``note`` (one line) is added as a comment (where it came from)."""
    header = (f"# jwst {proposal.release.tag} ({proposal.release.dms_build or 'no DMS build'}, "
              f"released {proposal.release.released}) with {proposal.context}.\n"
              "# Written by `build.py new` from the release catalog.\n")
    if note:
        header += f"# {grammar.one_line(note)}\n"
    return header + yaml.safe_dump(proposal.spec(), sort_keys=False)
