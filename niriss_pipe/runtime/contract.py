"""The image contract: the paths, names and formats that the host tool and the code inside
every image agree on, defined once and imported by both.

Standard library only, and Python 3.7 syntax: this module is copied into every image with
the rest of ``runtime`` and runs on the image's own Python.
"""

import hashlib
import re

# -- paths inside the image ------------------------------------------------------------------
CRDS_PATH = "/crds"  # the CRDS cache: a host cache mounted read-only, or baked into the image
DATA_PATH = "/data"  # the working directory; a batch task's product folder
INPUT_MOUNT = "/mnt/0"  # a batch task's input folder (a mount point in Charliecloud exports)
GIVEN_MOUNT = "/mnt/1"  # reproduce: the folder of the product being reproduced
# A batch's strun parameter-file folders, read-only (mount points in Charliecloud exports too).
PARAMETER_MOUNTS = tuple(f"/mnt/{i}" for i in range(1, 10))
ENV_PREFIX = "/opt/env"  # the Python environment, installed from the lock
RUNTIME_PREFIX = "/opt/niriss-pipe"  # this package's runtime, on the environment's sys.path
LOCK_IN_IMAGE = RUNTIME_PREFIX + "/requirements.lock"  # the lock the environment came from
# the derived test image of verify --upstream (never the image itself)
TEST_LOCK_IN_IMAGE = RUNTIME_PREFIX + "/test-requirements.lock"  # the test-only dependencies
TEST_SITE = RUNTIME_PREFIX + "/test-site"  # where they are installed (on PYTHONPATH)
TEST_RUNTIME = RUNTIME_PREFIX + "/test-runtime"  # this tool's runner, ahead of the image's
ENTRYPOINT_NAME = "niriss-pipe-entrypoint"  # on PATH: runtimes that skip ENTRYPOINT call it
ENTRYPOINT = "/usr/local/bin/" + ENTRYPOINT_NAME
IMAGE_USER, IMAGE_UID = "jwst", 1000
# What only a build needs (wheels, uv, a CA bundle): removed by the build, and its layer left out
# of the image; no image holds this path.
BUILD_DIR = "/tmp/niriss-pipe-build"

# -- environment -------------------------------------------------------------------------------
# Any CRDS_SERVER_URL containing 'serverless' makes the crds client skip every network call.
SERVERLESS_URL = "https://jwst-serverless-mode.stsci.edu"
SCOPE_ENV = "NIRISS_PIPE_CRDS_SCOPE"  # the spec's crds.scope: what check-cache expects
# What the self-test sets or clears itself (its own synthetic context, offline): an image's
# values of these do not change its verdict.
SELFTEST_OWN_ENV = ("CRDS_PATH", "CRDS_CONTEXT", "CRDS_SERVER_URL", "CRDS_MODE",
                    "CRDS_READONLY_CACHE", "CRDS_MAPPING_URI", "CRDS_REFERENCE_URI",
                    "CRDS_CONFIG_URI")
SKIP_CACHE_CHECK_ENV = "NIRISS_PIPE_SKIP_CACHE_CHECK"  # =1: strun without the cache check
# A batch task's cores (set by its script from SLURM or --cpus; the entrypoint logs it with the
# thread-pool variables, which the image's OpenBLAS, OpenMP, MKL and numexpr obey).
CPUS_ENV = "NIRISS_PIPE_CPUS"
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
SYNTHETIC_SERIAL = "9999"  # synthetic contexts: never an STScI context number, never shadows one
SYNTHETIC_FULL_SERIAL = "9998"  # the synthetic full-frame references (the benchmark's)

# -- labels ------------------------------------------------------------------------------------
LABEL_NS = "io.niriss-pipe"


TEST_OF = "test.of"  # a test image's label: the id of the image whose tests it runs
TEST_LOCK_DIGEST = "test.lock.digest"  # ... and the sha256 of the test lock it installed


def label(key):
    """``crds.context`` -> ``io.niriss-pipe.crds.context``."""
    return LABEL_NS + "." + key


# -- the lock ----------------------------------------------------------------------------------
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*(?:\[[^\]]*\])?)==([^\s;\\]+)", re.MULTILINE)


def canonical_name(name):
    """PEP 503 normalisation: ``Foo_Bar.baz`` -> ``foo-bar-baz`` (extras dropped)."""
    return re.sub(r"[-_.]+", "-", name.split("[", 1)[0].strip()).lower()


def lock_pins(text):
    """``{canonical name: version}`` of a hash-locked requirements file's ``name==version``
    lines (hash continuation lines and comments are ignored)."""
    return {canonical_name(name): version for name, version in _PIN.findall(text)}


# -- baked references ----------------------------------------------------------------------------
def manifest_digest(sha1s):
    """The ``crds.baked.manifest`` label of a baked cache, from ``{path below CRDS_PATH: sha1}``:
    sha256 over ``crds/<path> <sha1>`` lines sorted by that path. Files under ``config/`` (the
    server config, records) are not part of it."""
    lines = "".join(f"crds/{path} {sha1s[path]}\n"
                    for path in sorted(sha1s, key=lambda p: "crds/" + p)
                    if not path.startswith("config/"))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()
