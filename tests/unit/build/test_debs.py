"""The host's OS packages: kept per base and package list, checked by sha256 at every use; what
apt downloaded taken only by apt's own file names, never a path or a name that could reach the
build's shell or SHA256SUMS as anything but a file name."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import tarfile

import pytest

from niriss_pipe.build import debs
from niriss_pipe.core.errors import EngineError, UserError
from niriss_pipe.core.progress import Reporter

BASE = "sha256:" + "ab" * 32
PACKAGES = ["python3", "ca-certificates"]
GOOD = {"python3_3.11.2-1+b1_amd64.deb": b"python3 package",
        "libc6_2.36-9%3a1+deb12u9_amd64.deb": b"libc6 with an epoch"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_folder(root, files=GOOD, base=BASE, packages=PACKAGES, manifest_files=None):
    folder = debs.folder_for(root, base, packages)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    names = manifest_files if manifest_files is not None else \
        {name: sha(data) for name, data in files.items()}
    (folder / debs.MANIFEST).write_text(json.dumps({"base": base, "packages": sorted(packages),
                                                    "files": names}))
    return folder


def test_cache_dir_honours_xdg(tmp_path):
    assert debs.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == \
        tmp_path / "niriss-pipe" / "os-packages"


def test_one_folder_per_base_and_package_set(tmp_path):
    one = debs.folder_for(tmp_path, BASE, ["b", "a"])
    assert one == debs.folder_for(tmp_path, BASE, ["a", "b"])  # order does not matter
    assert one != debs.folder_for(tmp_path, "sha256:" + "cd" * 32, ["a", "b"])
    assert one != debs.folder_for(tmp_path, BASE, ["a", "b", "c"])
    assert one != debs.folder_for(tmp_path, BASE, ["a", "b=1.0"])
    assert one.parent == tmp_path and len(one.name) == 16


def test_verified_files_are_used_as_they_are(tmp_path):
    write_folder(tmp_path)
    found = debs.resolve(None, BASE, "debian:bookworm", PACKAGES, tmp_path, download=False)
    assert sorted(found.files) == sorted(GOOD)
    for name, item in found.files.items():
        assert item.sha1 == sha(GOOD[name]) and item.algorithm == "sha256"
    assert found.size == sum(len(data) for data in GOOD.values())


@pytest.mark.parametrize("change", ["tampered", "missing", "symlink", "other base",
                                    "other packages", "no manifest", "bad manifest"])
def test_a_changed_folder_is_never_used(tmp_path, change):
    folder = write_folder(tmp_path)
    name = sorted(GOOD)[0]
    if change == "tampered":
        (folder / name).write_bytes(b"something else")
    elif change == "missing":
        (folder / name).unlink()
    elif change == "symlink":
        (folder / name).rename(tmp_path / "elsewhere")
        (folder / name).symlink_to(tmp_path / "elsewhere")
    elif change == "other base":
        assert debs.verified(folder, "sha256:" + "cd" * 32, PACKAGES) is None
        return
    elif change == "other packages":
        assert debs.verified(folder, BASE, [*PACKAGES, "git"]) is None
        return
    elif change == "no manifest":
        (folder / debs.MANIFEST).unlink()
    else:
        (folder / debs.MANIFEST).write_text("[not, an, object")
    assert debs.verified(folder, BASE, PACKAGES) is None


@pytest.mark.parametrize("hostile", [
    "../escape_1.0_amd64.deb", "/etc/passwd_1_amd64.deb", "sub/dir_1.0_amd64.deb",
    "a b_1.0_amd64.deb", "x_1.0_amd64.deb\nrm -rf /", "$(id)_1.0_amd64.deb",
    "x_1.0_amd64.deb; reboot", "x_1.0_amd64.debs", "Upper_1.0_amd64.deb", "x_1'0_amd64.deb"])
def test_a_manifest_naming_anything_but_apt_file_names_is_refused(tmp_path, hostile):
    folder = write_folder(tmp_path, manifest_files={hostile: sha(b"x")})
    assert debs.verified(folder, BASE, PACKAGES) is None


def test_a_manifest_with_a_bad_digest_is_refused(tmp_path):
    name = sorted(GOOD)[0]
    folder = write_folder(tmp_path, files={name: GOOD[name]},
                          manifest_files={name: sha(GOOD[name]).upper()})
    assert debs.verified(folder, BASE, PACKAGES) is None


def test_offline_and_missing_names_the_fetch_command(tmp_path):
    with pytest.raises(UserError) as err:
        debs.resolve(None, BASE, "debian:bookworm", PACKAGES, tmp_path / "none",
                     download=False, fetch_hint="build.py fetch images/x.yaml --to /carry")
    text = str(err.value)
    assert "ca-certificates, python3" in text and BASE[7:19] in text
    assert "Fix: run: build.py fetch images/x.yaml --to /carry" in text


def archive(entries) -> list[bytes]:
    """A tar stream as the engine's get_archive sends it, cut into uneven chunks."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.type, info.linkname = tarfile.SYMTYPE, data.decode()
                tar.addfile(info)
    raw = buffer.getvalue()
    return [raw[i:i + 777] for i in range(0, len(raw), 777)]


class FakeEngine:
    """What _download asks of the engine: a run whose folder comes back as a tar stream.
    (Integration tests run apt for real in every build; this checks what is kept of it.)"""

    def __init__(self, code=0, entries=(), output="done"):
        self.code, self.entries, self.output = code, entries, output
        self.reporter = Reporter(out=io.StringIO())
        self.commands = []

    @contextlib.contextmanager
    def run_collect(self, image, command, folder, environment=None):
        self.commands.append((image, command, folder, environment))
        yield self.code, self.output, archive(self.entries) if self.code == 0 else None


def test_download_keeps_only_apt_files_of_the_folder(tmp_path):
    top = "niriss-pipe-debs"
    engine = FakeEngine(entries=[
        (top, b"", "dir"),
        *[(f"{top}/{name}", data, "file") for name, data in GOOD.items()],
        (f"{top}/partial/half_1.0_amd64.deb", b"half", "file"),  # not in the folder itself
        ("other/evil_1.0_amd64.deb", b"evil", "file"),
        (f"{top}/lock", b"", "file"),
        (f"{top}/link_1.0_amd64.deb", b"/etc/shadow", "symlink"),
    ])
    found = debs.resolve(engine, BASE, "debian:bookworm", PACKAGES, tmp_path,
                         environment={"HTTP_PROXY": "http://proxy:3128"})
    assert sorted(found.files) == sorted(GOOD)
    for name, item in found.files.items():
        assert item.path.read_bytes() == GOOD[name] and item.sha1 == sha(GOOD[name])
    folder = debs.folder_for(tmp_path, BASE, PACKAGES)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*GOOD, debs.MANIFEST])
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no .part folder left
    image, command, path, environment = engine.commands[0]
    assert image == BASE and path == debs.IN_HELPER
    assert command[-2:] == sorted(PACKAGES)  # positional arguments, never in the script
    assert environment == {"HTTP_PROXY": "http://proxy:3128"}
    again = debs.resolve(None, BASE, "debian:bookworm", PACKAGES, tmp_path, download=False)
    assert again.files == found.files


@pytest.mark.parametrize("hostile", ["a$(reboot)_1_amd64.deb", "x_1_amd64 .deb",
                                     "x_1\n_amd64.deb"])
def test_a_download_with_a_hostile_file_name_keeps_nothing(tmp_path, hostile):
    engine = FakeEngine(entries=[(f"niriss-pipe-debs/{name}", data, "file")
                                 for name, data in GOOD.items()]
                        + [(f"niriss-pipe-debs/{hostile}", b"x", "file")])
    with pytest.raises(EngineError) as err:
        debs.resolve(engine, BASE, "debian:bookworm", PACKAGES, tmp_path)
    assert "no Debian package file name" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_apt_failing_names_its_output_and_keeps_nothing(tmp_path):
    engine = FakeEngine(code=100, output="Reading package lists...\n"
                        "E: Unable to locate package no-such-package")
    with pytest.raises(UserError) as err:
        debs.resolve(engine, BASE, "debian:bookworm", ["no-such-package"], tmp_path)
    text = " ".join(str(err.value).split())
    assert "exit 100" in text and "Unable to locate package no-such-package" in text
    assert "the spec's 'apt' field" in text
    assert list(tmp_path.iterdir()) == []


def test_a_new_download_replaces_a_changed_folder(tmp_path):
    folder = write_folder(tmp_path)
    (folder / sorted(GOOD)[0]).write_bytes(b"tampered")
    engine = FakeEngine(entries=[(f"niriss-pipe-debs/{name}", data, "file")
                                 for name, data in GOOD.items()])
    found = debs.resolve(engine, BASE, "debian:bookworm", PACKAGES, tmp_path)
    assert {name: item.path.read_bytes() for name, item in found.files.items()} == GOOD


def test_removable_folders_are_those_of_the_removed_bases(tmp_path):
    kept = write_folder(tmp_path, base="sha256:" + "cd" * 32)
    gone = write_folder(tmp_path)
    (tmp_path / "not-ours").mkdir()
    assert debs.folders_of(tmp_path, {BASE}) == [gone]
    assert debs.folders_of(tmp_path, set()) == []
    assert kept.is_dir()
