#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for widesweep's Slurm tests:
# Debian's slurm-wlm (slurmctld, slurmd) and munge, CPU only, no cgroups
# (proctrack/linuxproc, task/none), so that it runs inside a container as
# well as on a VM. Idempotent: installs what is missing, (re)writes the
# configuration, starts the daemons that are not running and waits until
# the node is idle.
#
#   bash deploy/slurm/local-cluster.sh          # start
#   bash deploy/slurm/local-cluster.sh stop     # stop the daemons
set -euo pipefail

node=$(hostname -s)
cpus=$(nproc)
memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))

stop() {
    pkill -x slurmd 2>/dev/null || true
    pkill -x slurmctld 2>/dev/null || true
}
if [ "${1:-start}" = stop ]; then
    stop
    exit 0
fi

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    echo "installing slurm-wlm and munge"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: the key every daemon and client shares.
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! pgrep -x munged >/dev/null; then
    runuser -u munge -- /usr/sbin/munged
fi

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
# Written by widesweep's deploy/slurm/local-cluster.sh: one node, CPU only.
ClusterName=widesweep-test
SlurmctldHost=${node}
SlurmUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# The signal a job gets before its time limit comes at most this often.
KillWait=30
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=${node} CPUs=${cpus} RealMemory=${memory_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

if ! pgrep -x slurmctld >/dev/null; then
    /usr/sbin/slurmctld
fi
if ! pgrep -x slurmd >/dev/null; then
    /usr/sbin/slurmd
fi

for _ in $(seq 1 60); do
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
    case "$state" in
        idle*|mixed*|allocated*) echo "slurm: node $node is $state ($cpus CPUs, partition debug)"; exit 0 ;;
        down*|drain*) scontrol update nodename="$node" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
echo "error: the Slurm node $node did not become idle; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
exit 1
