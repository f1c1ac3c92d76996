#!/usr/bin/env bash
# make cluster: a Dask scheduler and WORKERS workers on this machine, to try KIT_SCHEDULER out.
#   scripts/cluster.sh [WORKERS=2] [PORT=8786] [BIN=.venv/bin]
# Prints the address to export in another shell; Ctrl-C (or SIGTERM) stops the scheduler and every worker.
# Logs: build/cluster/scheduler.log and workers.log. For real machines, see README "Running on a cluster".
set -euo pipefail

workers=${1:-2}
port=${2:-8786}
bin=${3:-.venv/bin}
cd "$(dirname "$0")/.."
if [ ! -x "$bin/dask" ]; then
    echo "No $bin/dask: install the kit first (make install), or pass the folder of the venv's programs." >&2
    exit 2
fi
# The workers import helpers/ from this checkout (grading, grids), whether or not the kit is installed.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
address="tcp://127.0.0.1:$port"
logs=build/cluster
mkdir -p "$logs"

pids=()
stop() {
    trap - INT TERM EXIT
    # Workers first, then the scheduler: a worker whose scheduler is gone waits to reconnect before it ends.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    echo "Dask cluster at $address stopped."
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

# Only this machine can reach it (127.0.0.1): it is for trying out, not for other machines.
# Worker saturation 1.0: a one-thread worker is sent one task at a time (Dask's 1.1 sends two), so a long
# grading or training run never waits behind another on a busy worker while a free one idles.
DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION=1.0 \
"$bin/dask" scheduler --host 127.0.0.1 --port "$port" --no-dashboard >"$logs/scheduler.log" 2>&1 &
pids+=($!)
for _ in $(seq 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    if ! kill -0 "${pids[0]}" 2>/dev/null; then
        echo "The Dask scheduler did not start (port $port in use? make cluster PORT=...):" >&2
        tail -n 5 "$logs/scheduler.log" >&2
        exit 1
    fi
    sleep 0.2
done
# One thread per worker: each grades a submission or trains a run at a time, and they share the cores.
"$bin/dask" worker "$address" --nworkers "$workers" --nthreads 1 --no-dashboard >"$logs/workers.log" 2>&1 &
pids+=($!)

echo "Dask scheduler at $address with $workers workers (logs in $logs/). In another shell:"
echo "  export KIT_SCHEDULER=$address"
echo "Ctrl-C stops them."
wait
