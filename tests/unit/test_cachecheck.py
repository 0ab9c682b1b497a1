"""cachecheck on tiny fake CRDS caches: no jwst or crds needed."""

import pytest

from niriss_pipe.runtime import cachecheck

PMAP = "jwst_0100.pmap"


def _mapping(derived_from, selections):
    entries = "".join(f"    {k!r} : {v!r},\n" for k, v in selections.items())
    return (f"header = {{\n    'derived_from' : {derived_from!r},\n    'sha1sum' : 'x',\n}}\n\n"
            f"selector = {{\n{entries}}}\n")


@pytest.fixture
def cache(tmp_path):
    """A complete cache: one pmap, two imaps, three rmaps, one N/A type, server_config."""
    mapdir = tmp_path / "mappings" / "jwst"
    mapdir.mkdir(parents=True)
    (tmp_path / "config" / "jwst").mkdir(parents=True)
    (tmp_path / "config" / "jwst" / "server_config").write_text("{}\n")
    imaps = {"niriss": "jwst_niriss_0010.imap", "fgs": "jwst_fgs_0010.imap"}
    (mapdir / PMAP).write_text(_mapping("jwst_0099.pmap", imaps))
    (mapdir / imaps["niriss"]).write_text(_mapping("jwst_niriss_0009.imap", {
        "dark": "jwst_niriss_dark_0003.rmap",
        "pars-jumpstep": "jwst_niriss_pars-jumpstep_0001.rmap",
        "refpix": "N/A",
    }))
    (mapdir / imaps["fgs"]).write_text(
        _mapping("jwst_fgs_0009.imap", {"gain": "jwst_fgs_gain_0002.rmap"}))
    for rmap in ("jwst_niriss_dark_0003.rmap", "jwst_niriss_pars-jumpstep_0001.rmap",
                 "jwst_fgs_gain_0002.rmap"):
        (mapdir / rmap).write_text("header = {}\n\nselector = Match({})\n")
    return tmp_path


def _remove(cache, name):
    (cache / "mappings" / "jwst" / name).unlink()


def test_complete_cache_passes_silently(cache, capsys):
    assert cachecheck.missing_mappings(str(cache), PMAP) == []
    assert cachecheck.main([str(cache), PMAP]) == 0
    assert capsys.readouterr() == ("", "")


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
