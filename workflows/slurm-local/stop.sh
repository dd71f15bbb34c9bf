#!/usr/bin/env bash
# Stops what workflows/slurm-local/start.sh STATE_DIR started: cancels the cluster's jobs,
# waits for them to end, then stops slurmd, slurmctld and munged by the process ids in their
# pid files, and waits until each has exited. STATE_DIR is left for its logs.
set -euo pipefail

state=${1:?usage: $0 STATE_DIR}
export SLURM_CONF=$state/slurm.conf

# Jobs first: their processes belong to slurmstepd, which outlives slurmd.
if [ -f "$state/slurmctld.pid" ] && kill -0 "$(cat "$state/slurmctld.pid")" 2>/dev/null; then
    jobs=$(squeue -h -o %A 2>/dev/null || true)
    if [ -n "$jobs" ]; then
        # shellcheck disable=SC2086  # one job id per word
        scancel $jobs || true
        for _ in $(seq 120); do
            [ -z "$(squeue -h -o %A 2>/dev/null || true)" ] && break
            sleep 0.5
        done
    fi
fi

stop() {  # stop PIDFILE: SIGTERM the process it names, SIGKILL it after 30 s
    local pidfile=$1 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 60); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.5
    done
    echo "$0: process $pid ($pidfile) ignored SIGTERM; killing it" >&2
    kill -9 "$pid" 2>/dev/null || true
}
stop "$state/slurmd.pid"
stop "$state/slurmctld.pid"
stop "$state/munge/munged.pid"
