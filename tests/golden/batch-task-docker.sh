#!/bin/bash
# niriss-pipe batch task: calwebb_detector1 on one exposure in niriss-pipe:jwst_1584 (docker).
# Written by niriss-pipe 0.1.0 (build.py batch); the same script runs a SLURM array task
# (the index is $SLURM_ARRAY_TASK_ID plus $NIRISS_PIPE_INDEX_OFFSET, for batches larger than
# the cluster's MaxArraySize) and a local worker or a user (the index is the first argument):
#     /shared/batches/b1/task.sh INDEX
# Task INDEX runs line INDEX of inputs.txt. It needs no network: the input folder is mounted at
# /mnt/0 and the CRDS cache at /crds, read-only, and products go to products/NAME/ (/data).
# Its state (running, then exit code and times) goes to state/INDEX, its output is appended to
# logs/INDEX.log. After a run that succeeded, a second container writes PNG previews of the
# products beside them (unless the batch was submitted with --no-preview).
# the container runs under dockerd, not under this script: on TERM the trap removes it by name
# (--init passes signals to strun)
set -uo pipefail

batch=/shared/batches/b1
cache=/shared/crds_cache
if [ -n "${1:-}" ]; then
    index=$1
elif [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
    index=$((SLURM_ARRAY_TASK_ID + ${NIRISS_PIPE_INDEX_OFFSET:-0}))
else
    index=
fi
job=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}}
job=${job:-${NIRISS_PIPE_JOB:-local}}
host=$(hostname)

fail() {  # a problem before the container starts: recorded as exit 2 with its reason
    echo "[niriss-pipe] task $index: error: $*" >&2
    write_state done 2 "${started:-$(date +%s.%N)}" "$(date +%s.%N)"
    exit 2
}
write_state() {  # STATE EXIT STARTED [ENDED]: replaced atomically, read by batch status
    local tmp="$batch/state/.$index.$$"
    printf '{"state": "%s", "exit": %s, "started": %s, "ended": %s, "job": "%s", "host": "%s"}\n' \
        "$1" "$2" "$3" "${4:-null}" "$job" "$host" >"$tmp" && mv -f "$tmp" "$batch/state/$index"
}

[[ "$index" =~ ^[0-9]+$ ]] || { echo "usage: $0 INDEX (1..2)" >&2; exit 2; }
input=$(sed -n "${index}p" "$batch/inputs.txt")
[ -n "$input" ] || { echo "task.sh: no task $index (the batch has 2)" >&2; exit 2; }
exec >>"$batch/logs/$index.log" 2>&1
input_dir=$(dirname "$input")
input_name=$(basename "$input")
name=${input_name%.fits}
case "$name" in
    ?*_uncal | ?*_rate | ?*_rateints | ?*_cal | ?*_calints | ?*_trapsfilled | ?*_ramp) name=${name%_*} ;;
esac
products="$batch/products/$name"
container="niriss-pipe-${job//[^A-Za-z0-9_.-]/-}-$index-$$"
export USER=${USER:-$(id -un 2>/dev/null || echo "uid$(id -u)")}

# Cores: SLURM's count for this task when it gives one, else the batch's --cpus (2).
# The thread pools (OpenBLAS, OpenMP, MKL, numexpr) in the container get that many, and so does
# jwst's maximum_cores of jump, ramp_fit when it is more than 1 (else jwst's default).
cpus=${SLURM_CPUS_PER_TASK:-2}
[[ "$cpus" =~ ^[1-9][0-9]{0,5}$ ]] || cpus=2
cores=()
if [ "$cpus" -gt 1 ]; then
    cores+=("--steps.jump.maximum_cores=$cpus")
    cores+=("--steps.ramp_fit.maximum_cores=$cpus")
fi

started=$(date +%s.%N)
echo "[niriss-pipe] task $index/2 $input_name: job $job on $host, $(date -u +%FT%TZ)"
echo "[niriss-pipe] task $index: $cpus cores: OMP_NUM_THREADS=$cpus OPENBLAS_NUM_THREADS=$cpus MKL_NUM_THREADS=$cpus NUMEXPR_NUM_THREADS=$cpus; strun ${cores[*]:-(jwst default maximum_cores)}"
write_state running null "$started"
[ -r "$input" ] || fail "the input $input is missing or not readable on $host"
[ -d "$cache" ] || fail "the CRDS cache $cache is not mounted on $host"
command -v docker >/dev/null || fail "docker is not on PATH on $host"

# A retry starts from an empty product folder: nothing of a failed attempt is left to mix in.
rm -rf "$products" && mkdir -p "$products" || fail "cannot create $products"

pid=
on_signal() {  # scancel, the time limit or Ctrl-C: stop the container, record, leave
    trap - TERM INT
    echo "[niriss-pipe] task $index: $1 received, stopping the container"
    docker rm --force "$container" >/dev/null 2>&1
    [ -n "$pid" ] && wait "$pid" 2>/dev/null
    write_state killed "$2" "$started" "$(date +%s.%N)"
    exit "$2"
}
trap 'on_signal SIGTERM 143' TERM
trap 'on_signal SIGINT 130' INT

docker run --rm --init --name "$container" --network none --read-only --tmpfs /tmp \
    --user "$(id -u):$(id -g)" --volume "$input_dir:/mnt/0:ro" --volume "$products:/data" \
    --volume "$cache:/crds:ro" --workdir /data --env CRDS_CONTEXT=jwst_9999.pmap \
    --env "NIRISS_PIPE_CPUS=$cpus" --env "OMP_NUM_THREADS=$cpus" \
    --env "OPENBLAS_NUM_THREADS=$cpus" --env "MKL_NUM_THREADS=$cpus" \
    --env "NUMEXPR_NUM_THREADS=$cpus" \
    sha256:abababababababababababababababababababababababababababababababab \
    strun calwebb_detector1 "/mnt/0/$input_name" --output_dir=/data \
    ${cores[@]+"${cores[@]}"} &
pid=$!
wait "$pid"
code=$?
if [ "$code" = 0 ]; then  # PNG previews of the products, beside them (batch report shows them)
    docker run --rm --init --name "$container" --network none --read-only --tmpfs /tmp \
        --user "$(id -u):$(id -g)" --volume "$products:/data" --workdir /data \
        sha256:abababababababababababababababababababababababababababababababab \
        python -m niriss_pipe.runtime.preview --products /data &
    pid=$!
    wait "$pid" || echo "[niriss-pipe] task $index: no preview (exit $?); the products are complete"
fi
ended=$(date +%s.%N)
write_state done "$code" "$started" "$ended"
echo "[niriss-pipe] task $index $input_name: exit $code after $(awk "BEGIN {printf \"%.1f\", $ended - $started}") s"
exit "$code"
