"""How two images' configs and layers are told apart: each difference named by its field, or
by its file with what differs (size, mode, owner, time, content, link)."""

from __future__ import annotations

import io
import tarfile

from niriss_pipe.provenance.imagediff import config_differences, file_differences, layer_files


def tar_of(files: dict) -> io.BytesIO:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, (data, mode, mtime) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, mtime
            tar.addfile(info, io.BytesIO(data))
    out.seek(0)
    return out


def test_config_fields_that_differ_are_named():
    a = {"config": {"Labels": {"x": "1", "y": "2"}, "Env": ["A=1"]}, "history": [{"c": 1}]}
    b = {"config": {"Labels": {"x": "1", "y": "3", "z": "4"}, "Env": ["A=2"]},
         "history": [{"c": 2}]}
    assert config_differences(a, b) == ["config.Env[0]", "config.Labels.y", "config.Labels.z",
                                        "history[0].c"]
    assert config_differences(a, dict(a)) == []


def test_files_that_differ_are_named_with_what_differs():
    first = layer_files(tar_of({"a": (b"1", 0o644, 10), "b": (b"2", 0o644, 10),
                                "c": (b"3", 0o644, 10), "gone": (b"", 0o644, 10)}))
    second = layer_files(tar_of({"a": (b"1", 0o644, 10), "b": (b"22", 0o755, 10),
                                 "c": (b"4", 0o644, 11), "new": (b"", 0o644, 10)}))
    found = file_differences(first, second)
    assert found[0] == "b: size 1 vs 2, mode 0o644 vs 0o755, content " \
        "d4735e3a265e vs 785f3ec7eb32"
    assert found[1].startswith("c: mtime 10 vs 11, content ")
    assert "gone: only in the first" in found and "new: only in the second" in found
    assert "a" not in " ".join(found).split(":")[0]
    assert file_differences(first, first) == []
