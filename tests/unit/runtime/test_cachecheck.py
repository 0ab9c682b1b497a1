"""cachecheck on small fake CRDS caches (crds itself only as the reference for what an rmap
selects): mappings, references in both layouts, the sync record, each scope."""

import json
import shutil

import pytest

from niriss_pipe.runtime import cachecheck
from tests.crds_server.realistic import write_cache

PMAP = "jwst_0100.pmap"


def _mapping(derived_from, selections):
    entries = "".join(f"    {k!r} : {v!r},\n" for k, v in selections.items())
    return (f"header = {{\n    'derived_from' : {derived_from!r},\n    'sha1sum' : 'x',\n}}\n\n"
            f"selector = {{\n{entries}}}\n")


NIRISS_REFS = ["jwst_niriss_dark_0001.fits", "jwst_niriss_dark_0002.fits",
               "jwst_niriss_dark_0003.fits", "jwst_niriss_pars-jumpstep_0001.asdf"]
DARK_RMAP = """header = {
    'derived_from' : 'jwst_niriss_dark_0002.rmap',
    'filekind' : 'DARK',
    'instrument' : 'NIRISS',
    'mapping' : 'REFERENCE',
    'name' : 'jwst_niriss_dark_0003.rmap',
    'observatory' : 'JWST',
    'parkey' : (('META.INSTRUMENT.DETECTOR', 'META.EXPOSURE.READPATT'), ('META.OBSERVATION.DATE',
                'META.OBSERVATION.TIME')),
    'sha1sum' : 'x',
    'comment' : 'jwst_niriss_dark_0009.fits',  # a header names no reference
}

selector = Match({
    ('NIS', 'NISRAPID') : UseAfter({
        '2000-01-01 00:00:00' : 'jwst_niriss_dark_0001.fits',
        '2020-01-01 00:00:00' : 'jwst_niriss_dark_0002.fits',
    }),
    ('NIS', 'NIS|NISRAPID') : UseAfter({
        '2000-01-01 00:00:00' : 'jwst_niriss_dark_0003.fits',
    }),
    ('NIS', 'FGS') : 'N/A',
    ('NIS', 'OTHER') : 'OMIT',
})
"""


def _rmap_selecting(*refs):
    """An rmap (a complete header, as crds needs) whose UseAfter selects ``refs``."""
    instrument, filekind = refs[0].split("_")[1:3]
    header = {"derived_from": "x.rmap", "filekind": filekind.upper(), "instrument":
              instrument.upper(), "mapping": "REFERENCE", "name": f"jwst_{instrument}_"
              f"{filekind}_0001.rmap", "observatory": "JWST", "sha1sum": "x",
              "parkey": (("META.OBSERVATION.DATE", "META.OBSERVATION.TIME"),)}
    head = "".join(f"    {k!r} : {v!r},\n" for k, v in header.items())
    entries = "".join(f"    '{2000 + i}-01-01 00:00:00' : {ref!r},\n" for i, ref in enumerate(refs))
    return f"header = {{\n{head}}}\n\nselector = UseAfter({{\n{entries}}})\n"


@pytest.fixture
def cache(tmp_path):
    """A complete cache: one pmap, two imaps, three rmaps (the NIRISS ones selecting four
    references, N/A and OMIT), one N/A type, server_config, references in instrument layout."""
    mapdir = tmp_path / "mappings" / "jwst"
    mapdir.mkdir(parents=True)
    (tmp_path / "config" / "jwst").mkdir(parents=True)
    (tmp_path / "config" / "jwst" / "server_config").write_text("{}\n")
    (tmp_path / "config" / "jwst" / "ref_cache_subdir_mode").write_text("instrument\n")
    imaps = {"NIRISS": "jwst_niriss_0010.imap", "FGS": "jwst_fgs_0010.imap"}
    (mapdir / PMAP).write_text(_mapping("jwst_0099.pmap", imaps))
    (mapdir / imaps["NIRISS"]).write_text(_mapping("jwst_niriss_0009.imap", {
        "dark": "jwst_niriss_dark_0003.rmap",
        "pars-jumpstep": "jwst_niriss_pars-jumpstep_0001.rmap",
        "refpix": "N/A",
    }))
    (mapdir / imaps["FGS"]).write_text(
        _mapping("jwst_fgs_0009.imap", {"gain": "jwst_fgs_gain_0002.rmap"}))
    (mapdir / "jwst_niriss_dark_0003.rmap").write_text(DARK_RMAP)
    (mapdir / "jwst_niriss_pars-jumpstep_0001.rmap").write_text(
        _rmap_selecting("jwst_niriss_pars-jumpstep_0001.asdf"))
    (mapdir / "jwst_fgs_gain_0002.rmap").write_text(_rmap_selecting("jwst_fgs_gain_0001.fits"))
    refdir = tmp_path / "references" / "jwst" / "niriss"
    refdir.mkdir(parents=True)
    for name in NIRISS_REFS:
        (refdir / name).write_bytes(b"ref")
    return tmp_path


def _remove(cache, name):
    (cache / "mappings" / "jwst" / name).unlink()


def test_complete_cache_passes_silently_before_a_run_and_says_so_when_asked(cache, capsys):
    assert cachecheck.missing_mappings(str(cache), PMAP) == []
    assert cachecheck.main(["--quiet", str(cache), PMAP]) == 0
    assert capsys.readouterr() == ("", "")
    assert cachecheck.main([str(cache), PMAP]) == 0
    out = capsys.readouterr().out
    assert "serves jwst_0100.pmap offline" in out and "all 4 references" in out
    assert "scope instrument" in out and "NIRISS rmaps" in out


def test_derived_from_parents_are_not_required(cache):
    # jwst_0099.pmap and the *_0009.imap parents are named in headers but never cached
    assert cachecheck.missing_mappings(str(cache), PMAP) == []


def test_missing_rmap_is_reported_with_fix(cache, capsys):
    _remove(cache, "jwst_niriss_pars-jumpstep_0001.rmap")
    assert cachecheck.missing_mappings(str(cache), PMAP) == ["jwst_niriss_pars-jumpstep_0001.rmap"]
    assert cachecheck.main([str(cache), PMAP]) == cachecheck.EXIT_INCOMPLETE
    err = capsys.readouterr().err
    assert str(cache) in err and PMAP in err
    assert "1 mapping missing: jwst_niriss_pars-jumpstep_0001.rmap" in err
    assert "CRDS_SERVER_URL=https://jwst-crds.stsci.edu" in err
    assert f"python build.py sync --context {PMAP} --cache <host dir>" in err
    assert f"crds sync --contexts {PMAP}" in err and "-v <host dir>:/crds:ro" in err


def test_unreadable_cache_is_named_as_such(cache, capsys, monkeypatch):
    monkeypatch.setattr(cachecheck.os, "access", lambda path, mode: False)
    assert cachecheck.main([str(cache), PMAP]) == cachecheck.EXIT_INCOMPLETE
    assert "not readable by uid" in capsys.readouterr().err


def test_missing_imap_is_reported_instead_of_its_rmaps(cache):
    _remove(cache, "jwst_fgs_0010.imap")
    assert cachecheck.missing_mappings(str(cache), PMAP) == ["jwst_fgs_0010.imap"]


def test_missing_context(cache):
    assert cachecheck.missing_mappings(str(cache), "jwst_0200.pmap") == ["jwst_0200.pmap"]


def test_missing_server_config(cache, capsys):
    (cache / "config" / "jwst" / "server_config").unlink()
    assert cachecheck.main([str(cache), PMAP]) == cachecheck.EXIT_INCOMPLETE
    assert "config/jwst/server_config is missing" in capsys.readouterr().err


def test_lists_at_most_five(cache, capsys):
    imap = cache / "mappings" / "jwst" / "jwst_niriss_0010.imap"
    imap.write_text(_mapping("x.imap", {f"t{i}": f"jwst_niriss_t{i}_0001.rmap" for i in range(8)}))
    assert len(cachecheck.missing_mappings(str(cache), PMAP)) == 8
    cachecheck.main([str(cache), PMAP])
    err = capsys.readouterr().err
    assert "8 mappings missing:" in err and err.count("jwst_niriss_t") == 5 and ", ..." in err


def test_defaults_come_from_environment(cache, monkeypatch):
    monkeypatch.setenv("CRDS_PATH", str(cache))
    monkeypatch.setenv("CRDS_CONTEXT", PMAP)
    assert cachecheck.main([]) == 0
    _remove(cache, "jwst_fgs_gain_0002.rmap")
    assert cachecheck.main([]) == cachecheck.EXIT_INCOMPLETE


@pytest.mark.parametrize("args", [[], ["/crds"], ["/crds", "jwst_niriss_0010.imap"], ["--help"]])
def test_usage_errors(args, monkeypatch, capsys):
    monkeypatch.delenv("CRDS_PATH", raising=False)
    monkeypatch.delenv("CRDS_CONTEXT", raising=False)
    assert cachecheck.main(args) == cachecheck.EXIT_USAGE
    assert capsys.readouterr().err


# ---------------------------------------------------------------- references

def _refdir(cache, *parts):
    folder = cache.joinpath("references", "jwst", *parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _record(cache, context=PMAP, **entry):
    entry = {"instrument": "niriss", "complete": True, **entry}
    (cache / cachecheck.RECORD).write_text(json.dumps({context: entry}))


def _main(cache, capsys, scope=None, monkeypatch=None):
    if scope:
        monkeypatch.setenv(cachecheck.SCOPE_ENV, scope)
    code = cachecheck.main([str(cache), PMAP])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_rmap_references_are_what_the_crds_client_computes(cache):
    from crds.core import rmap

    mapdir = cache / "mappings" / "jwst"
    expected = set()
    for name in ("jwst_niriss_dark_0003.rmap", "jwst_niriss_pars-jumpstep_0001.rmap"):
        expected |= set(rmap.ReferenceMapping.from_string(
            (mapdir / name).read_text(), ignore_checksum=True).reference_names())
    assert cachecheck.rmap_references(str(cache), PMAP) == sorted(expected) == NIRISS_REFS


def test_missing_reference_is_named_with_the_fix(cache, capsys, monkeypatch):
    (cache / "references/jwst/niriss/jwst_niriss_dark_0002.fits").unlink()
    code, err = _main(cache, capsys)
    assert code == cachecheck.EXIT_INCOMPLETE
    assert "1 reference missing: jwst_niriss_dark_0002.fits" in err
    assert f"python build.py sync --context {PMAP} --cache <host dir>" in err
    assert "jwst_niriss_0010.imap --fetch-references" in err  # the plain-crds alternative


def test_many_missing_references_show_five_and_the_count(cache, capsys):
    imap = cache / "mappings/jwst/jwst_niriss_0010.imap"
    imap.write_text(_mapping("x.imap", {"gain": "jwst_niriss_gain_0001.rmap"}))
    refs = [f"jwst_niriss_gain_{n:04d}.fits" for n in range(1, 9)]
    (cache / "mappings/jwst/jwst_niriss_gain_0001.rmap").write_text(_rmap_selecting(*refs))
    code, err = _main(cache, capsys)
    assert code == cachecheck.EXIT_INCOMPLETE
    assert "8 references missing: " + ", ".join(refs[:5]) + ", ..." in err


def test_other_instruments_references_are_not_needed(cache):
    assert "jwst_fgs_gain_0001.fits" not in cachecheck.rmap_references(str(cache), PMAP)
    assert cachecheck.check(str(cache), PMAP).complete


def test_instrument_layout_finds_a_reference_in_any_instrument_folder(cache):
    # as crds.jwst.locate does: it looks in each instrument folder before deriving one
    moved = "jwst_niriss_dark_0001.fits"
    (cache / "references/jwst/niriss" / moved).rename(_refdir(cache, "nircam") / moved)
    assert cachecheck.check(str(cache), PMAP).complete
    (_refdir(cache, "nircam") / moved).rename(_refdir(cache) / moved)  # flat place: not looked at
    assert cachecheck.check(str(cache), PMAP).missing_references == [moved]


def test_flat_layout(cache):
    (cache / cachecheck.SUBDIR_MODE).write_text("flat\n")
    state = cachecheck.check(str(cache), PMAP)
    assert state.missing_references == NIRISS_REFS  # in niriss/, where flat mode never looks
    for name in NIRISS_REFS:
        (cache / "references/jwst/niriss" / name).rename(_refdir(cache) / name)
    assert cachecheck.check(str(cache), PMAP).complete


def test_layout_guessed_as_crds_does_when_not_configured(cache):
    (cache / cachecheck.SUBDIR_MODE).unlink()
    assert cachecheck.subdir_mode(str(cache)) == "instrument"
    assert cachecheck.check(str(cache), PMAP).complete
    for n in range(cachecheck.FLAT_GUESS_OVER + 1):  # a crowded references/jwst means flat
        (_refdir(cache) / f"jwst_miri_flat_{n:04d}.fits").write_bytes(b"")
    assert cachecheck.subdir_mode(str(cache)) == "flat"
    assert cachecheck.check(str(cache), PMAP).missing_references == NIRISS_REFS


def test_record_of_an_interrupted_sync_names_what_it_did_not_fetch(cache, capsys):
    _record(cache, scope="instrument", references=NIRISS_REFS + ["jwst_niriss_gain_0001.fits"],
            complete=False)
    state = cachecheck.check(str(cache), PMAP)
    assert state.source == "the sync record (instrument)"
    assert state.missing_references == ["jwst_niriss_gain_0001.fits"]
    code, err = _main(cache, capsys)
    assert code == cachecheck.EXIT_INCOMPLETE and "jwst_niriss_gain_0001.fits" in err


def test_datasets_scope_checks_the_records_names(cache, capsys, monkeypatch):
    _record(cache, scope="datasets", references=["jwst_niriss_dark_0001.fits"])
    for name in NIRISS_REFS[1:]:  # a dataset sync fetched only what its exposures select
        (cache / "references/jwst/niriss" / name).unlink()
    code, out = _main(cache, capsys, "datasets", monkeypatch)
    assert code == 0 and "all 1 references (scope datasets" in out
    (cache / "references/jwst/niriss/jwst_niriss_dark_0001.fits").unlink()
    code, err = _main(cache, capsys, "datasets", monkeypatch)
    assert code == cachecheck.EXIT_INCOMPLETE
    assert "1 reference missing: jwst_niriss_dark_0001.fits" in err
    assert "--scope datasets --datasets <exposures>" in err


def test_a_datasets_record_does_not_cover_instrument_scope(cache, capsys, monkeypatch):
    _record(cache, scope="datasets", references=["jwst_niriss_dark_0001.fits"])
    (cache / "references/jwst/niriss/jwst_niriss_dark_0003.fits").unlink()
    code, err = _main(cache, capsys, "instrument", monkeypatch)
    assert code == cachecheck.EXIT_INCOMPLETE and "jwst_niriss_dark_0003.fits" in err


def test_an_instrument_record_covers_datasets_scope(cache, capsys, monkeypatch):
    _record(cache, scope="instrument", references=NIRISS_REFS)
    code, out = _main(cache, capsys, "datasets", monkeypatch)
    assert code == 0 and "all 4 references" in out


def test_datasets_scope_without_record_checks_mappings_and_says_why_not_references(
        cache, capsys, monkeypatch):
    for name in NIRISS_REFS:
        (cache / "references/jwst/niriss" / name).unlink()
    code, out = _main(cache, capsys, "datasets", monkeypatch)
    assert code == 0 and "references not checked" in out and "no sync record" in out
    _remove(cache, "jwst_fgs_gain_0002.rmap")
    code, err = _main(cache, capsys, "datasets", monkeypatch)
    assert code == cachecheck.EXIT_INCOMPLETE and "jwst_fgs_gain_0002.rmap" in err


def test_scope_none_checks_mappings_only(cache, capsys, monkeypatch):
    shutil.rmtree(cache / "references")
    code, out = _main(cache, capsys, "none", monkeypatch)
    assert code == 0 and "references not checked (scope none" in out
    state = cachecheck.check(str(cache), PMAP)  # host default: the record's, else instrument
    assert state.scope == "instrument" and len(state.missing_references) == 4
    _record(cache, scope="none", references=[])
    assert cachecheck.check(str(cache), PMAP).complete


def test_scope_from_the_environment_must_be_known(cache, capsys, monkeypatch):
    monkeypatch.setenv(cachecheck.SCOPE_ENV, "everything")
    assert cachecheck.main([str(cache), PMAP]) == cachecheck.EXIT_USAGE
    assert "NIRISS_PIPE_CRDS_SCOPE='everything'" in capsys.readouterr().err


def test_a_record_of_another_instrument_or_garbled_is_not_used(cache):
    _record(cache, scope="instrument", instrument="fgs", references=[])
    assert cachecheck.check(str(cache), PMAP).source == "the cached NIRISS rmaps"
    _record(cache, scope="everything", references=[])  # a hand edit: the default applies
    assert cachecheck.check(str(cache), PMAP).scope == "instrument"
    (cache / cachecheck.RECORD).write_text('{"jwst_0100.pmap": {"scope": "instr')  # never
    assert cachecheck.read_records(str(cache)) == {}  # written so, but never trusted either


def test_missing_niriss_imap_leaves_references_unchecked_but_fails(cache):
    _remove(cache, "jwst_niriss_0010.imap")
    state = cachecheck.check(str(cache), PMAP)
    assert not state.complete and state.missing_mappings == ["jwst_niriss_0010.imap"]
    assert state.references is None and "imap" in state.unchecked


def test_realistic_cache_agrees_with_crds(tmp_path):
    """A cache of real size and shape (6 imaps of 40 rmaps, 3000 NIRISS references)."""
    from crds.core import rmap

    context, names = write_cache(tmp_path, rmaps=40, references=3000)
    assert cachecheck.rmap_references(str(tmp_path), context) == names
    one = tmp_path / "mappings/jwst/jwst_niriss_type01_0500.rmap"
    crds_names = rmap.ReferenceMapping.from_string(one.read_text(),
                                                   ignore_checksum=True).reference_names()
    assert set(crds_names) <= set(names) and len(crds_names) == 75
    assert cachecheck.check(str(tmp_path), context).complete
    (tmp_path / "references/jwst/niriss" / names[1234]).unlink()
    assert cachecheck.check(str(tmp_path), context).missing_references == [names[1234]]
