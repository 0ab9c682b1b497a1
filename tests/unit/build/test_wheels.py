"""The host's wheel folder: every file checked against the lock's sha256 before a build uses it."""

from __future__ import annotations

import hashlib

import pytest

from niriss_pipe.build import wheels
from niriss_pipe.core.errors import UserError
from niriss_pipe.render.dockerfile import UV_WHEEL

PURE = b"PK not really a wheel, but bytes with a hash"
NAME = "asdf_standard-1.5.0-py3-none-any.whl"


def lock_text(payload: bytes = PURE) -> str:
    sha = hashlib.sha256(payload).hexdigest()
    return ('# inputs: {"exclude_newer": "2026-07-15", "platform": "x86_64-manylinux_2_36", '
            '"python": "3.11", "requirements": ["jwst==3.0.0"]}\n'
            f"asdf-standard==1.5.0 \\\n    --hash=sha256:{sha}\n")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A wheelhouse holding the wheel and a stand-in for uv (its pinned hash, patched)."""
    (tmp_path / NAME).write_bytes(PURE)
    (tmp_path / UV_WHEEL).write_bytes(b"uv")
    monkeypatch.setattr(wheels, "UV_SHA256", hashlib.sha256(b"uv").hexdigest())
    return tmp_path


def test_cache_dir_honours_xdg(tmp_path):
    assert wheels.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "niriss-pipe/wheels"
    assert wheels.cache_dir({}).parts[-3:] == (".cache", "niriss-pipe", "wheels")


def test_verified_files_offline(folder):
    found = wheels.resolve(lock_text(), folder, download=False)
    assert sorted(found) == sorted([NAME, UV_WHEEL])
    assert found[NAME].sha256 == hashlib.sha256(PURE).hexdigest()


def test_a_changed_file_is_never_used(folder):
    (folder / NAME).write_bytes(PURE + b"tampered")
    with pytest.raises(UserError) as err:
        wheels.resolve(lock_text(), folder, download=False, fetch_hint="build.py fetch S.yaml")
    assert "asdf-standard==1.5.0" in str(err.value)
    assert "Fix: run: build.py fetch S.yaml" in str(err.value)


def test_an_empty_folder_names_everything_and_the_fetch_command(tmp_path):
    with pytest.raises(UserError) as err:
        wheels.resolve(lock_text(), tmp_path / "none", download=False,
                       fetch_hint="build.py fetch S.yaml")
    assert "2 wheel(s)" in str(err.value) and "uv==" in str(err.value)


@pytest.mark.parametrize("hostile", [
    "asdf_standard-1.5.0-py3-none-any.whl\n", "asdf_standard-1.5.0-py3-none-any'.whl",
    "asdf_standard-1.5.0-py3-none-any.whl;touch x", "asdf_st\u0430ndard-1.5.0-py3-none-any.whl",
])
def test_hostile_names_in_a_wheelhouse_are_never_read(folder, hostile):
    """A file with the right bytes under a name that is no safe wheel file name: ignored (it
    would land in a context path); the right file next to it is still used."""
    (folder / hostile).write_bytes(PURE)
    found = wheels.resolve(lock_text(), folder, download=False)
    assert hostile not in found and NAME in found


def test_a_symlink_is_not_a_wheel(folder, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "secret"
    outside.write_bytes(PURE)
    (folder / NAME).unlink()
    (folder / NAME).symlink_to(outside)
    with pytest.raises(UserError):
        wheels.resolve(lock_text(), folder, download=False)


def test_download_checks_the_hash(folder, monkeypatch):
    """A download whose bytes differ from the lock's hash is not kept."""
    (folder / NAME).unlink()
    served = {"filename": NAME, "url": "https://files.example/x.whl", "size": 3,
              "hashes": {"sha256": hashlib.sha256(PURE).hexdigest()}}
    monkeypatch.setattr(wheels.pypi, "project_files", lambda name: [served])

    class Response:
        def __init__(self, data):
            self.data = [data, b""]

        def read(self, size):
            return self.data.pop(0)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(wheels.urllib.request, "urlopen", lambda url, timeout: Response(b"bad"))
    with pytest.raises(UserError) as err:
        wheels.resolve(lock_text(), folder)
    assert "was not kept" in str(err.value)
    assert not list(folder.glob("*.part")) and not (folder / NAME).exists()
    monkeypatch.setattr(wheels.urllib.request, "urlopen", lambda url, timeout: Response(PURE))
    assert NAME in wheels.resolve(lock_text(), folder)


def _served(filename: str, payload: bytes) -> dict:
    return {"filename": filename, "url": f"https://files.example/{filename}",
            "hashes": {"sha256": hashlib.sha256(payload).hexdigest()}, "size": len(payload)}


def test_a_source_release_only_is_named_and_nothing_is_downloaded(folder, monkeypatch):
    """jwst 1.12.5's era: the index has some locked releases as sdists only. Such a lock is
    installed from the index in the build (the Dockerfile's pip path); no wheel is fetched."""
    (folder / NAME).unlink()
    sdist = "asdf-standard-1.5.0.tar.gz"  # the sdist's name spelling differs from the lock's
    monkeypatch.setattr(wheels.pypi, "project_files", lambda name: [_served(sdist, PURE)])
    monkeypatch.setattr(wheels.urllib.request, "urlopen",
                        lambda *a, **k: pytest.fail("nothing is downloaded"))
    with pytest.raises(wheels.SourcesInLock) as err:
        wheels.resolve(lock_text(), folder)
    assert err.value.sources == ["asdf-standard==1.5.0"]
    assert "source release" in str(err.value) and "offline" in str(err.value)
    assert wheels.sources_in(lock_text(), folder) == ["asdf-standard==1.5.0"]
    assert list(folder.iterdir()) == [folder / UV_WHEEL]


def test_a_hash_the_index_does_not_list_is_an_altered_lock(folder, monkeypatch):
    """A tampered lock (or index): no file of the release has a hash the lock names, wheel
    or sdist; the build stops before it starts, naming the package."""
    (folder / NAME).unlink()
    monkeypatch.setattr(wheels.pypi, "project_files", lambda name: [
        _served(NAME, b"another file"), _served("asdf_standard-1.5.0.tar.gz", b"another sdist")])
    with pytest.raises(UserError) as err:
        wheels.resolve(lock_text(), folder)
    assert not isinstance(err.value, wheels.SourcesInLock)
    message = str(err.value)
    assert "asdf-standard==1.5.0" in message and "the lock was edited" in message
    assert "Fix: lock the spec again" in message


def test_a_complete_wheel_folder_asks_no_index(folder, monkeypatch):
    monkeypatch.setattr(wheels.pypi, "project_files",
                        lambda name: pytest.fail("the index is not asked"))
    assert wheels.sources_in(lock_text(), folder) == []
