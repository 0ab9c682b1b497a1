"""Which wheel of a locked package a build installs: by the lock's hashes and pip's tag order."""

from __future__ import annotations

import pytest

from niriss_pipe.core import grammar
from niriss_pipe.spec.wheels import Locked, WheelFile, choose, locked, target_tags

H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64
LOCK = f"""# niriss-pipe lock
numpy==2.3.1 \\
    --hash=sha256:{H1} \\
    --hash=sha256:{H2}
# via jwst
stdatamodels[schemas]==4.0.0 \\
    --hash=sha256:{H3}
"""
TAGS = target_tags("3.11", "x86_64-manylinux_2_36")


def test_locked_reads_name_version_and_every_hash():
    assert locked(LOCK) == [Locked("numpy", "2.3.1", frozenset({H1, H2})),
                            Locked("stdatamodels", "4.0.0", frozenset({H3}))]


def test_the_most_specific_compatible_wheel_wins_among_locked_hashes():
    numpy = locked(LOCK)[0]
    files = [WheelFile("numpy-2.3.1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                       H1),
             WheelFile("numpy-2.3.1-cp311-cp311-manylinux_2_28_x86_64.whl", H2),
             WheelFile("numpy-2.3.1-cp311-cp311-manylinux_2_34_x86_64.whl", H3)]  # not locked
    assert choose(numpy, files, TAGS).sha256 == H2


@pytest.mark.parametrize("filename", [
    "numpy-2.3.1-cp312-cp312-manylinux_2_28_x86_64.whl",  # another Python
    "numpy-2.3.1-cp311-cp311-manylinux_2_39_x86_64.whl",  # newer glibc than bookworm's
    "numpy-2.3.1-cp311-cp311-musllinux_1_2_x86_64.whl",
    "numpy-2.3.1-cp311-cp311-macosx_14_0_arm64.whl",
    "numpy-2.3.2-cp311-cp311-manylinux_2_28_x86_64.whl",  # another version
    "numpy-2.3.1.tar.gz",
])
def test_no_wheel_the_image_cannot_install(filename):
    assert choose(locked(LOCK)[0], [WheelFile(filename, H1)], TAGS) is None


def test_pure_wheels_and_canonical_names():
    pick = choose(locked(LOCK)[1], [WheelFile("stdatamodels-4.0.0-py3-none-any.whl", H3)], TAGS)
    assert pick is not None
    assert choose(Locked("asdf-astropy", "0.11.0", frozenset({H1})),
                  [WheelFile("asdf_astropy-0.11.0-py3-none-any.whl", H1)], TAGS) is not None


@pytest.mark.parametrize("name", [
    "../numpy-2.3.1-py3-none-any.whl", "numpy-2.3.1-py3-none-any.whl/", "a/b-1-py3-none-any.whl",
    "numpy-2.3.1-py3-none-any.whl\n", "numpy-2.3.1-py3-none-any.whl;rm -rf",
    "numpy-2.3.1-py3-none-any'.whl", "nump\u0443-2.3.1-py3-none-any.whl", "-1-py3-none-any.whl",
    "numpy-2.3.1-py3-none-any.whl ", "numpy-2.3.1-py3-none-$(id).whl", "", "x" * 300 + ".whl",
])
def test_hostile_file_names_are_not_wheels(name):
    assert grammar.wheel_filename(name) is None
    assert choose(Locked("numpy", "2.3.1", frozenset({H1})), [WheelFile(name, H1)], TAGS) is None


def test_platform_must_be_manylinux_x86_64():
    with pytest.raises(ValueError):
        target_tags("3.11", "aarch64-manylinux_2_36")
