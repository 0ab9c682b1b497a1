#!/bin/sh
# Build niriss-pipe_jwst_1584.sif, the Apptainer/Singularity image of
# niriss-pipe:jwst_1584, from niriss-pipe_jwst_1584.docker.tar beside this script.
# Run it where apptainer (or singularity) is installed:  sh niriss-pipe_jwst_1584.sif.sh
# It needs no Docker Engine, registry or network; copy the two files anywhere together.
#
# Image sha256:5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f
# written by niriss-pipe 0.1.0: build.py export niriss-pipe:jwst_1584 --to sif
#
# The SIF keeps the image's environment, from its OCI config:
#     PATH=/opt/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
#     LANG=C.UTF-8
#     LC_ALL=C.UTF-8
#     DEBIAN_FRONTEND=noninteractive
#     CRDS_PATH=/crds
#     CRDS_SERVER_URL=https://jwst-serverless-mode.stsci.edu
#     CRDS_MODE=local
#     CRDS_READONLY_CACHE=1
#     MPLBACKEND=Agg
#     CRDS_CONTEXT=jwst_1584.pmap
# and `apptainer run` runs the image's entrypoint; with no arguments:
#     /usr/local/bin/niriss-pipe-entrypoint info
#
# Run with a host CRDS cache read-only at /crds and your files at /data:
#     apptainer run --containall --bind CACHE:/crds:ro --bind "$PWD":/data --pwd /data \
#         niriss-pipe_jwst_1584.sif strun calwebb_detector1 jw..._uncal.fits
#     apptainer run --containall niriss-pipe_jwst_1584.sif selftest
#     apptainer run --containall --bind CACHE:/crds:ro niriss-pipe_jwst_1584.sif check-cache
# --containall (--contain --cleanenv --ipc --pid) keeps the host's environment (PYTHONPATH,
# CRDS_*), home (~/.local Python packages would shadow the image's) and /tmp out, as docker run
# does; without it give at least --cleanenv --no-home. Host variables do not override the
# image's ENV: use --env, e.g. --env CRDS_CONTEXT=jwst_NNNN.pmap for another context than
# jwst_1584.pmap in the same cache. Apptainer ignores the image's USER and WORKDIR: processes
# run as you (files written to /data are yours), hence --pwd. The SIF is read-only, the cache
# is bound :ro and CRDS_READONLY_CACHE=1. `apptainer exec` skips the entrypoint's cache check.
set -eu
cd "$(dirname "$0")"
builder=$(command -v apptainer || command -v singularity) || {
    echo "error: neither apptainer nor singularity is on PATH: install Apptainer" \
        "(https://apptainer.org/docs/admin/main/installation.html), then run this again." >&2
    exit 1
}
sif=niriss-pipe_jwst_1584.sif
partial=niriss-pipe_jwst_1584.sif.partial
trap 'rm -f "$partial"' EXIT
"$builder" build "$partial" docker-archive:niriss-pipe_jwst_1584.docker.tar
mv "$partial" "$sif"
echo "wrote $(pwd)/$sif"
