#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests of the Slurm launcher against a real Slurm.
#
#   sudo scripts/slurm_local.sh start [DIR]   # install (Debian's slurmctld, slurmd, munge) if need be,
#                                             # configure in DIR (default /tmp/asym-slurm), start the
#                                             # daemons as plain processes, wait until the node is idle
#   scripts/slurm_local.sh env [DIR]          # the line to eval: export SLURM_CONF=DIR/slurm.conf
#   sudo scripts/slurm_local.sh stop [DIR]    # stop the daemons by their pids
#
# No systemd and no cgroups: processes are tracked through /proc (proctrack/linuxproc), tasks are
# not confined (task/none), nothing is accounted (no slurmdbd: squeue and the job-completion log
# in DIR/jobcomp.log say what ran). Munge, the authentication every Slurm message needs, gets a
# fresh key. Everything else lives in DIR, so stopping and removing DIR leaves the machine as it was
# (but the packages). Needs root (installing, munge's key, slurmd).
set -euo pipefail

cmd=${1:-}
dir=${2:-/tmp/asym-slurm}
conf="$dir/slurm.conf"

die() { echo "slurm_local: error: $*" >&2; exit 1; }

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && command -v sinfo >/dev/null; then
    return
  fi
  [ "$(id -u)" = 0 ] || die "Slurm is not installed and installing it needs root (apt-get install slurmctld slurmd slurm-client munge)"
  command -v apt-get >/dev/null || die "no apt-get here: install Slurm (slurmctld, slurmd, client tools) and munge by hand"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null \
    || die "apt-get install slurmctld slurmd slurm-client munge failed"
}

start_munge() {
  mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  fi
  chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
  chmod 0700 /etc/munge /var/lib/munge /var/log/munge
  chmod 0400 /etc/munge/munge.key
  chmod 0755 /run/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --force
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n | unmunge >/dev/null 2>&1 || die "munged did not start (see /var/log/munge/munged.log)"
    pgrep -x munged > "$dir/munged.pid"
  fi
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  cat > "$conf" <<EOF
# Written by scripts/slurm_local.sh: one node, this machine.
ClusterName=asym-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
# A cancelled or requeued job gets SIGTERM, then SIGKILL after KillWait seconds (submitit lets the
# SIGTERM pass): 2 s here, so that a test sees the kill in the middle of a short run.
KillWait=2
# A requeued job (scontrol requeue, preemption) may start again at once.
JobRequeue=1
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  install
  [ "$(id -u)" = 0 ] || die "starting slurmd and munge needs root"
  mkdir -p "$dir"
  start_munge
  write_conf
  stop_daemons quiet
  if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
    # Another cluster's daemons hold the ports (6817, 6818): its controller would answer for ours.
    die "a slurmctld or slurmd is already running (pids $(pgrep -d, -x 'slurmctld|slurmd')): stop it first"
  fi
  /usr/sbin/slurmctld -f "$conf" || die "slurmctld did not start (see $dir/log/slurmctld.log)"
  /usr/sbin/slurmd -f "$conf" || die "slurmd did not start (see $dir/log/slurmd.log)"
  for _ in $(seq 60); do
    if SLURM_CONF=$conf sinfo -h -o '%T' 2>/dev/null | grep -qx idle; then
      echo "slurm_local: node $(hostname -s) idle ($(nproc) CPUs), partition debug; export SLURM_CONF=$conf"
      return
    fi
    sleep 0.5
  done
  die "the node did not become idle in 30 s: $(SLURM_CONF=$conf sinfo -h 2>&1 | head -n 1) (see $dir/log/)"
}

stop_daemons() {
  for name in slurmd slurmctld; do
    local pidfile="$dir/$name.pid" pid=""
    [ -s "$pidfile" ] && pid=$(cat "$pidfile")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
  done
  [ "${1:-}" = quiet ] || echo "slurm_local: stopped"
}

case "$cmd" in
  start) start ;;
  stop) stop_daemons ;;
  env) echo "export SLURM_CONF=$conf" ;;
  *) echo "usage: scripts/slurm_local.sh start|stop|env [DIR]" >&2; exit 2 ;;
esac
