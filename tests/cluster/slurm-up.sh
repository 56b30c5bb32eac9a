#!/usr/bin/env bash
# Starts a single-node Slurm on this machine for the cluster tests: munged (if no munge
# daemon answers) and slurmctld + slurmd with a configuration written under DIR, listening
# on 127.0.0.1. Prints the path of slurm.conf (use it as SLURM_CONF). Idempotent: daemons
# this script started earlier for DIR are reused. Fails loudly with their logs.
# Usage: slurm-up.sh DIR
set -euo pipefail
dir=$(realpath -m "${1:?usage: slurm-up.sh DIR}")
mkdir -p "$dir/state" "$dir/spool"
for b in slurmctld slurmd sbatch munged munge; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || {
    echo "slurm-up: $b is missing: install slurm-wlm and munge (docker/setup-host.sh does)" >&2; exit 1; }
done
PATH="$PATH:/usr/sbin"

# munge: the authentication Slurm's daemons and clients share.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  [ -s /etc/munge/munge.key ] || { echo "slurm-up: /etc/munge/munge.key is missing" >&2; exit 1; }
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge/munge.key 2>/dev/null || true
  chmod 0400 /etc/munge/munge.key
  if id munge >/dev/null 2>&1; then
    runuser -u munge -- munged
  else
    munged --force
  fi
  for _ in $(seq 1 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || { echo "slurm-up: munged did not start" >&2; tail -20 /var/log/munge/munged.log >&2 || true; exit 1; }
fi

host=$(hostname -s)
conf="$dir/slurm.conf"
# Ports from the directory, so two checkouts' test Slurms on one machine do not collide.
sum=$(printf '%s' "$dir" | cksum | cut -d' ' -f1)
port=$(( 20000 + sum % 10000 * 2 ))
cat >"$conf.new" <<CONF
ClusterName=mendtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=8 RealMemory=1000 State=UNKNOWN
PartitionName=mendtest Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:8
CONF
alive() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }
# The same configuration: keep the daemons; another one: restart the ones started for DIR.
if [ -f "$conf" ] && cmp -s "$conf" "$conf.new"; then
  rm "$conf.new"
else
  for d in slurmd slurmctld; do
    if alive "$d"; then kill "$(cat "$dir/$d.pid")"; sleep 1; fi
  done
  mv "$conf.new" "$conf"
fi
export SLURM_CONF="$conf"
if ! alive slurmctld; then slurmctld -f "$conf" -i; fi
if ! alive slurmd; then slurmd -f "$conf"; fi
sleep 0.5
for d in slurmctld slurmd; do
  alive "$d" || { echo "slurm-up: $d did not stay up (port $port or $((port + 1)) taken?)" >&2; tail -20 "$dir/$d.log" >&2 || true; exit 1; }
done
for _ in $(seq 1 100); do
  state=$(sinfo -h -N -o '%T' 2>/dev/null | head -1 || true)
  case "$state" in idle*|mixed*|allocated*) echo "$conf"; exit 0;; esac
  sleep 0.2
done
echo "slurm-up: the node did not become idle (state '${state:-none}')" >&2
tail -20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
exit 1
