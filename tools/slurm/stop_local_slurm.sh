#!/usr/bin/env bash
# stop_local_slurm.sh - cancel jobs, then stop the daemons whose PIDs
# tools/slurm/start_local_slurm.sh recorded (slurmd, slurmctld, slurmdbd, mariadbd, munged).
# A PID is only signalled if /proc/PID/comm still matches the recorded name.
set -uo pipefail
STATE_DIR=${SLURM_LOCAL_STATE_DIR:-${TMPDIR:-/tmp}/local_slurm}
PIDS_FILE=$STATE_DIR/pids
[ -s "$PIDS_FILE" ] || { echo "nothing recorded in $PIDS_FILE"; exit 0; }

alive() {
  local pid=${1:-} name=$2
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] &&
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] &&
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

# cancel remaining jobs so no slurmstepd/job processes outlive the daemons
if command -v squeue >/dev/null && squeue -h -o %i >/dev/null 2>&1; then
  jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// }" ]; then
    scancel $jobs 2>/dev/null || true
    for _ in $(seq 1 50); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.2; done
  fi
fi

for name in slurmd slurmctld slurmdbd mariadbd munged; do
  pid=$(awk -v n="$name" '$1==n {print $2}' "$PIDS_FILE" | tail -n1)
  if alive "$pid" "$name"; then
    echo "stopping $name ($pid)"
    kill "$pid"
    for _ in $(seq 1 100); do alive "$pid" "$name" || break; sleep 0.1; done
    if alive "$pid" "$name"; then kill -9 "$pid"; fi
  fi
done
rm -f "$PIDS_FILE"
echo "slurm stopped"
