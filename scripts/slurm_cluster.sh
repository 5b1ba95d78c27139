#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for CI and for trying the SLURM profile (config/slurm/):
# Debian's slurm-wlm + munge, one CPU partition, no accounting database (jobs are tracked with
# `squeue`, so MinJobAge is large). Runs as root; every command is safe to repeat.
#
#   bash scripts/slurm_cluster.sh start    # install if missing, write slurm.conf, start munged/slurmctld/slurmd
#   bash scripts/slurm_cluster.sh status   # exit 0 when the node accepts jobs; prints partition and node state
#   bash scripts/slurm_cluster.sh stop     # stop the three daemons (our pid files only)
#   bash scripts/slurm_cluster.sh partition  # print the partition name
#
# The partition is not the cluster default, like many real clusters: jobs must name it
# (--default-resources slurm_partition=NAME). Override the name with SLURM_CI_PARTITION.
set -euo pipefail

PARTITION="${SLURM_CI_PARTITION:-cpu}"
CONF=/etc/slurm/slurm.conf
LOGDIR=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid

die() { echo "slurm_cluster: $*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons); uid is $(id -u)"
}

install_if_missing() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
     && command -v munged >/dev/null; then
    return 0
  fi
  command -v apt-get >/dev/null || die "slurm-wlm/munge are not installed and apt-get is not available"
  echo "slurm_cluster: installing slurm-wlm and munge (apt-get)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null \
    || die "apt-get install slurm-wlm munge failed"
}

write_conf() {
  local node cpus mem tmp
  node="$(hostname -s)"
  cpus="$(nproc)"
  # slurmd refuses a node that claims more memory than it has; take what slurmd itself detects
  mem="$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')"
  [ -n "$mem" ] || die "could not read RealMemory from 'slurmd -C'"
  mkdir -p /etc/slurm "$LOGDIR" /var/spool/slurmctld /var/spool/slurmd
  tmp="$(mktemp)"
  cat >"$tmp" <<EOF
# Written by scripts/slurm_cluster.sh: a single-node CI cluster. Edits are overwritten on the next start.
ClusterName=reproduce-ci
SlurmctldHost=$node
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
# memory is a consumable resource, so --mem requests are scheduled and enforced
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
# no accounting database: squeue must still see finished jobs, so keep them for an hour
MinJobAge=3600
# job memory is sampled every 2 s and a step over its --mem is killed (the "killed by memory" case)
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill
KillWait=5
# a job asking for more than the partition's nodes have is refused at submission, not left pending forever
EnforcePartLimits=ALL
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
NodeName=$node CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$node Default=NO MaxTime=INFINITE State=UP
EOF
  if [ -f "$CONF" ] && cmp -s "$tmp" "$CONF"; then
    rm -f "$tmp"
    return 1  # unchanged
  fi
  mv "$tmp" "$CONF"
  chmod 644 "$CONF"
  return 0
}

alive() {  # alive PIDFILE: the daemon named in the pid file runs
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

start_munge() {
  alive "$MUNGE_PID" && return 0
  mkdir -p /run/munge /var/lib/munge /var/log/munge
  chown munge:munge /run/munge /var/lib/munge /var/log/munge
  chmod 755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    runuser -u munge -- mungekey -c -k /etc/munge/munge.key
  fi
  runuser -u munge -- munged --pid-file "$MUNGE_PID" || die "munged did not start (see /var/log/munge/munged.log)"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local secs="$1" what="$2"; shift 2
  for _ in $(seq "$secs"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  die "$what not ready after ${secs}s (logs: $LOGDIR/slurmctld.log, $LOGDIR/slurmd.log)"
}

node_ready() {  # the node is idle, mixed or allocated: it accepts jobs
  sinfo -h -N -p "$PARTITION" -o %T | grep -Eq '^(idle|mixed|allocated|completing)'
}

start() {
  need_root
  install_if_missing
  local changed=0
  write_conf && changed=1
  start_munge
  if [ "$changed" = 1 ] && alive "$CTLD_PID"; then
    echo "slurm_cluster: slurm.conf changed, restarting the daemons"
    stop_slurm
  fi
  alive "$CTLD_PID" || slurmctld || die "slurmctld did not start (see $LOGDIR/slurmctld.log)"
  wait_for 30 slurmctld scontrol ping
  alive "$SLURMD_PID" || slurmd || die "slurmd did not start (see $LOGDIR/slurmd.log)"
  # a node left DOWN/DRAIN by an earlier run is brought back
  if sinfo -h -N -o %T | grep -Eq '^(down|drain|drained|draining)'; then
    scontrol update nodename="$(hostname -s)" state=resume || true
  fi
  wait_for 60 "node $(hostname -s)" node_ready
  echo "slurm_cluster: up (partition $PARTITION, node $(hostname -s), $(nproc) CPUs)"
}

stop_slurm() {
  local f
  for f in "$SLURMD_PID" "$CTLD_PID"; do
    if alive "$f"; then
      kill "$(cat "$f")"
      for _ in $(seq 20); do alive "$f" || break; sleep 0.5; done
    fi
    rm -f "$f"
  done
}

stop() {
  need_root
  stop_slurm
  if alive "$MUNGE_PID"; then kill "$(cat "$MUNGE_PID")"; fi
  echo "slurm_cluster: stopped"
}

status() {
  alive "$MUNGE_PID" || die "munged is not running"
  alive "$CTLD_PID" || die "slurmctld is not running"
  alive "$SLURMD_PID" || die "slurmd is not running"
  node_ready || die "node not ready: $(sinfo -h -N -o '%N %T' 2>&1)"
  sinfo -h -p "$PARTITION" -o "partition=%P state=%a nodes=%D cpus=%c memory_mb=%m"
}

serialized() {  # serialized COMMAND: one start or stop at a time (two test processes may start it at once)
  need_root
  exec 9>/run/reproduce-slurm-cluster.lock
  flock -w 600 9 || die "waited 600 s for /run/reproduce-slurm-cluster.lock; the processes holding or waiting for it: $(fuser -v /run/reproduce-slurm-cluster.lock 2>&1)"
  # The command runs with fd 9 closed for everything it starts (bash keeps its own copy, so the lock holds):
  # a daemon started with it open (munged, slurmctld, slurmd, or one a package's install script starts) would
  # hold the lock for as long as it runs, and every later start or stop would wait on it.
  "$@" 9>&-
}

case "${1:-}" in
  start) serialized start ;;
  stop) serialized stop ;;
  status) status ;;
  partition) echo "$PARTITION" ;;
  *) echo "usage: $0 start|stop|status|partition" >&2; exit 2 ;;
esac
