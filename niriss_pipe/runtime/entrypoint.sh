#!/bin/sh
# niriss-pipe image entrypoint: run any command offline against the image's pinned CRDS context.
#   selftest      synthetic NIRISS exposure + synthetic context through calwebb_detector1
#   info          what is in this image and how to run it
#   check-cache   is the mounted CRDS cache complete for CRDS_CONTEXT (its mappings and the
#                 references of NIRISS_PIPE_CRDS_SCOPE)? Says so, or names what is missing.
#   anything else is run as given (strun, python, crds, bash ...); pipeline commands check the
#   cache first (silently when complete) so a missing mapping or reference fails in a second
#   with the sync command, not mid-pipeline.
set -eu

# `docker run --user UID:GID` may give a HOME that does not exist or is not ours: astropy and
# crds write small config files there, so give them a private writable one.
if [ ! -d "${HOME:-/nonexistent}" ] || [ ! -w "${HOME:-/nonexistent}" ]; then
    HOME=$(mktemp -d /tmp/home.XXXXXX)
    export HOME
fi

# An arbitrary uid has no passwd entry; jwst's logging asks getpass.getuser(), which then
# fails unless USER or LOGNAME is set.
if [ -z "${USER:-}" ]; then
    USER=$(id -un 2>/dev/null || echo "uid$(id -u)")
    export USER
fi

case "${1:-info}" in
    selftest)
        shift
        exec python -m niriss_pipe.runtime.selftest "$@"
        ;;
    check-cache)
        shift
        exec python -m niriss_pipe.runtime.cachecheck "$@"
        ;;
    info)
        python - <<'EOF'
import os, jwst, crds, sys
print(f"niriss-pipe image: jwst {jwst.__version__}, crds {crds.__version__}, "
      f"Python {sys.version.split()[0]}")
print(f"CRDS_CONTEXT={os.environ.get('CRDS_CONTEXT')}  CRDS_PATH={os.environ.get('CRDS_PATH')}")
print("run:  docker run --rm --network none --user $(id -u):$(id -g) --read-only --tmpfs /tmp \\\n"
      "          -v CACHE:/crds:ro -v $PWD:/data IMAGE strun calwebb_detector1 x_uncal.fits")
print("      IMAGE selftest | check-cache | strun ... | python ... | crds ... | bash")
EOF
        exit 0
        ;;
    strun|collect_pipeline_cfgs)
        if [ -n "${NIRISS_PIPE_CPUS:-}" ]; then  # a batch task: its cores as seen in here
            echo "[niriss-pipe] in the container: NIRISS_PIPE_CPUS=${NIRISS_PIPE_CPUS}" \
                "OMP_NUM_THREADS=${OMP_NUM_THREADS:-} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-}" \
                "MKL_NUM_THREADS=${MKL_NUM_THREADS:-} NUMEXPR_NUM_THREADS=${NUMEXPR_NUM_THREADS:-}" >&2
        fi
        if [ "${NIRISS_PIPE_SKIP_CACHE_CHECK:-0}" != 1 ]; then
            python -m niriss_pipe.runtime.cachecheck --quiet
        fi
        ;;
esac
exec "$@"
