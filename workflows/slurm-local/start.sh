#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for trying `wsi-ihc batch --cluster slurm` and
# workflows/batch.sbatch without an HPC account (the test suite runs on it too).
#
#   sudo apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge
#   sudo workflows/slurm-local/start.sh /tmp/slurm      # prints the SLURM_CONF line to export
#   export SLURM_CONF=/tmp/slurm/slurm.conf
#   sinfo; sbatch ...; squeue
#   sudo workflows/slurm-local/stop.sh /tmp/slurm
#
# Everything lives in STATE_DIR: the munge key and socket, slurm.conf, the controller's
# state, logs and pid files; nothing under /etc is read or written. The node has this
# machine's CPUs and memory (`slurmd -C`) and listens on loopback only. It runs as root:
# slurmd starts each job as the user who submitted it.
#
# Settings (environment): SLURM_PARTITION (default cpu, the partition the `slurm-cpu`
# profile of workflows/jobqueue.yaml asks for), SLURMCTLD_PORT / SLURMD_PORT (defaults
# 6817 / 6818, SLURM's own), SLURM_OVERSUBSCRIBE (default 4: jobs that may share one CPU,
# so a driver job and its workers fit on a small machine).
set -euo pipefail

state=${1:?usage: $0 STATE_DIR}
partition=${SLURM_PARTITION:-cpu}
ctld_port=${SLURMCTLD_PORT:-6817}
slurmd_port=${SLURMD_PORT:-6818}
oversubscribe=${SLURM_OVERSUBSCRIBE:-4}

for program in munged mungekey slurmctld slurmd sinfo; do
    command -v "$program" >/dev/null || {
        echo "$0: $program not found: apt-get install slurmctld slurmd slurm-client munge" >&2
        exit 1
    }
done
[ "$(id -u)" -eq 0 ] || { echo "$0: slurmd must run as root" >&2; exit 1; }

mkdir -p "$state"
state=$(cd "$state" && pwd)
mkdir -p "$state"/{munge,ctld,spool,log}
chmod 755 "$state/munge"  # users reach the socket; the key itself is 0600

# munge authenticates every message between clients, controller and node with this key.
mungekey --create --force --keyfile="$state/munge/munge.key"
munged --force --key-file="$state/munge/munge.key" --socket="$state/munge/socket" \
    --pid-file="$state/munge/munged.pid" --log-file="$state/log/munged.log" \
    --seed-file="$state/munge/seed"

# The node's line as slurmd detects it: NodeName=<host> CPUs=.. (sockets, cores) RealMemory=..
node=$(slurmd -C | head -n 1)
host=$(hostname -s)
cat >"$state/slurm.conf" <<CONF
ClusterName=wsi-ihc-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$state/munge/socket
CredType=cred/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool/%n
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
# No cgroups in most containers: track job processes through /proc, bind no CPUs.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
# Cores and memory are both handed out, as on most clusters; a job without --mem gets 1 GB.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerNode=1024
ReturnToService=2
# Seconds between SIGTERM and SIGKILL when a job is cancelled or reaches its time limit.
KillWait=10
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$partition Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:$oversubscribe
CONF

export SLURM_CONF=$state/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"

# Ready when the node is idle (it registers within a few seconds).
for _ in $(seq 120); do
    if [ "$(sinfo -h -o %t 2>/dev/null | head -n 1)" = idle ]; then
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.5
done
echo "$0: the node did not become idle; see $state/log/" >&2
sinfo >&2 || true
tail -n 20 "$state"/log/*.log >&2
exit 1
