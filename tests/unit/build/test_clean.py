"""clean removes only what niriss-pipe made: in a CRDS cache, only the synthetic context."""

from __future__ import annotations

from niriss_pipe.build.clean import synthetic_files


def test_only_synthetic_serial_and_its_config(tmp_path):
    maps = tmp_path / "mappings/jwst"
    refs = tmp_path / "references/jwst/niriss"
    config = tmp_path / "config/jwst"
    for folder in (maps, refs, config):
        folder.mkdir(parents=True)
    for name in ("jwst_9999.pmap", "jwst_niriss_9999.imap", "jwst_1584.pmap",
                 "jwst_niriss_dark_9999.rmap", "jwst_niriss_dark_0099.rmap"):
        (maps / name).write_text("x")
    for name in ("jwst_niriss_dark_9999.fits", "jwst_niriss_dark_0999.fits"):
        (refs / name).write_text("x")
    (config / "server_config").write_text("{'operational_context': 'jwst_1584.pmap'}")
    found = {p.name for p in synthetic_files(tmp_path)}
    assert found == {"jwst_9999.pmap", "jwst_niriss_9999.imap", "jwst_niriss_dark_9999.rmap",
                     "jwst_niriss_dark_9999.fits"}
    (config / "server_config").write_text("{'operational_context': 'jwst_9999.pmap'}")
    assert "server_config" in {p.name for p in synthetic_files(tmp_path)}
