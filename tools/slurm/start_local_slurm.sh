#!/usr/bin/env bash
# start_local_slurm.sh - install (if needed) and start a single-node Slurm
# cluster (munged + slurmctld + slurmd) on Debian 12, as root, without systemd,
# for developing and testing espnet_mtl's Slurm backend (adapted from the
# project's design notes, ../shared/design/slurm.md). Two partitions share the
# node: `cpu` (default) and `gpu` (the node has no GPUs, so a GPU request is
# refused at submission, as on a CPU-only cluster).
# Idempotent: packages, key, config and daemons are only touched when missing,
# different or dead. Prints "slurm ready" when the node is idle.
#   tools/slurm/start_local_slurm.sh && tools/slurm/stop_local_slurm.sh
#
# Env knobs:
#   SLURM_LOCAL_STATE_DIR  where PIDs are recorded   (default ${TMPDIR:-/tmp}/local_slurm)
#   SLURM_LOCAL_CPUS       advertise N CPUs instead of the real count
#                          (oversubscription via SlurmdParameters=config_overrides)
#   SLURM_READY_TIMEOUT    seconds to wait for the node to become idle (default 60)
#   SLURM_WITH_ACCOUNTING  1 = also install/start MariaDB + slurmdbd so sacct works
set -euo pipefail

STATE_DIR=${SLURM_LOCAL_STATE_DIR:-${TMPDIR:-/tmp}/local_slurm}
PIDS_FILE=$STATE_DIR/pids
CONF=/etc/slurm/slurm.conf
PKGS="slurmctld slurmd slurm-client munge"
READY_TIMEOUT=${SLURM_READY_TIMEOUT:-60}
ACCT=${SLURM_WITH_ACCOUNTING:-0}
[ "$ACCT" = 1 ] && PKGS="$PKGS slurmdbd mariadb-server"

log() { echo "[start_local_slurm] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
mkdir -p "$STATE_DIR"
touch "$PIDS_FILE"

# --- 1. packages ------------------------------------------------------------
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
if [ -n "$missing" ]; then
  log "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # postinst cannot start services without systemd/runlevel; that is fine.
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# --- helpers ----------------------------------------------------------------
# alive PID NAME: PID exists, is not a zombie, and /proc/PID/comm == NAME
alive() {
  local pid=${1:-} name=$2 st
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$st" != Z ]
}
pid_from_file() { [ -s "$1" ] && tr -dc '0-9' <"$1" || true; }
record_pid() {  # NAME PID  -> replace the NAME line in $PIDS_FILE
  local tmp; tmp=$(mktemp "$STATE_DIR/pids.XXXXXX")
  { grep -v "^$1 " "$PIDS_FILE" || true; echo "$1 $2"; } >"$tmp"
  mv "$tmp" "$PIDS_FILE"
}
stop_pid() {  # NAME PIDFILE
  local pid; pid=$(pid_from_file "$2")
  if alive "$pid" "$1"; then
    log "stopping $1 ($pid)"; kill "$pid"
    for _ in $(seq 1 100); do alive "$pid" "$1" || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
}

# --- 2. munge -----------------------------------------------------------------
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge /etc/munge
if [ ! -s /etc/munge/munge.key ]; then
  log "creating munge key"
  mungekey -c -k /etc/munge/munge.key 2>/dev/null ||
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
  rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock /run/munge/munged.pid
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 1 50); do munge_ok && break; sleep 0.1; done
  munge_ok || die "munged did not come up (see /var/log/munge/munged.log)"
  record_pid munged "$(pid_from_file /run/munge/munged.pid)"
fi

# --- 2b. optional accounting: MariaDB + slurmdbd.conf -------------------------
if [ "$ACCT" = 1 ]; then
  db_ok() { mariadb -e 'select 1' >/dev/null 2>&1; }
  if ! db_ok; then
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    install -d -m 0755 /var/log/slurm
    log "starting mariadbd"
    setsid nohup /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
      >>/var/log/slurm/mariadb.log 2>&1 </dev/null &
    record_pid mariadbd $!
    for _ in $(seq 1 100); do db_ok && break; sleep 0.1; done
    db_ok || die "mariadbd did not come up (see /var/log/slurm/mariadb.log)"
  fi
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmlocal';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  NEWDBD=$(mktemp "$STATE_DIR/slurmdbd.conf.XXXXXX")
  cat >"$NEWDBD" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmlocal
StorageLoc=slurm_acct_db
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
EOF
  if ! cmp -s "$NEWDBD" /etc/slurm/slurmdbd.conf; then
    install -d -m 0755 /etc/slurm
    install -m 0600 "$NEWDBD" /etc/slurm/slurmdbd.conf
    stop_pid slurmdbd /run/slurmdbd.pid
  fi
  rm -f "$NEWDBD"
  ACCT_CONF="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobAcctGatherType=jobacct_gather/linux"
else
  ACCT_CONF="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

# --- 3. slurm.conf ------------------------------------------------------------
H=$(hostname -s)
HW=$(slurmd -C | head -n1)          # NodeName=... CPUs=.. Boards=.. RealMemory=..
get() { echo "$HW" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
MEM=$(( $(get RealMemory) * 95 / 100 ))   # margin so the node never drains on "Low RealMemory"
if [ -n "${SLURM_LOCAL_CPUS:-}" ]; then
  NODE_HW="CPUs=$SLURM_LOCAL_CPUS"; EXTRA="SlurmdParameters=config_overrides"
else
  NODE_HW="CPUs=$(get CPUs) Boards=$(get Boards) SocketsPerBoard=$(get SocketsPerBoard) CoresPerSocket=$(get CoresPerSocket) ThreadsPerCore=$(get ThreadsPerCore)"
  EXTRA=""
fi
install -d -m 0755 /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm /etc/slurm
NEW=$(mktemp "$STATE_DIR/slurm.conf.XXXXXX")
cat >"$NEW" <<EOF
# generated by espnet_mtl tools/slurm/start_local_slurm.sh
ClusterName=localcluster
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
$ACCT_CONF
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
DependencyParameters=kill_invalid_depend
EnforcePartLimits=ALL
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
$EXTRA
NodeName=$H NodeAddr=127.0.0.1 $NODE_HW RealMemory=$MEM State=UNKNOWN
PartitionName=cpu Nodes=$H Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$H Default=NO MaxTime=INFINITE State=UP
EOF
CONF_CHANGED=0
if ! cmp -s "$NEW" "$CONF"; then
  [ -f "$CONF" ] && [ ! -f "$CONF.orig" ] && ! grep -q start_local_slurm "$CONF" && cp "$CONF" "$CONF.orig"
  install -m 0644 "$NEW" "$CONF"; CONF_CHANGED=1; log "wrote $CONF"
fi
rm -f "$NEW"

# --- 4. daemons ---------------------------------------------------------------
if [ "$CONF_CHANGED" = 1 ]; then   # config changed: restart whatever runs
  stop_pid slurmd /run/slurmd.pid
  stop_pid slurmctld /run/slurmctld.pid
fi
if [ "$ACCT" = 1 ] && ! alive "$(pid_from_file /run/slurmdbd.pid)" slurmdbd; then
  log "starting slurmdbd"
  slurmdbd
  for _ in $(seq 1 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.1; done
  alive "$(pid_from_file /run/slurmdbd.pid)" slurmdbd || die "slurmdbd died (see /var/log/slurm/slurmdbd.log)"
  record_pid slurmdbd "$(pid_from_file /run/slurmdbd.pid)"
fi
if ! alive "$(pid_from_file /run/slurmctld.pid)" slurmctld; then
  log "starting slurmctld"
  slurmctld            # forks into the background, writes /run/slurmctld.pid
  for _ in $(seq 1 50); do alive "$(pid_from_file /run/slurmctld.pid)" slurmctld && break; sleep 0.1; done
  alive "$(pid_from_file /run/slurmctld.pid)" slurmctld || die "slurmctld died (see /var/log/slurm/slurmctld.log)"
  record_pid slurmctld "$(pid_from_file /run/slurmctld.pid)"
fi
if ! alive "$(pid_from_file /run/slurmd.pid)" slurmd; then
  log "starting slurmd"
  slurmd
  for _ in $(seq 1 50); do alive "$(pid_from_file /run/slurmd.pid)" slurmd && break; sleep 0.1; done
  alive "$(pid_from_file /run/slurmd.pid)" slurmd || die "slurmd died (see /var/log/slurm/slurmd.log)"
  record_pid slurmd "$(pid_from_file /run/slurmd.pid)"
fi

# --- 5. wait for the node -------------------------------------------------------
deadline=$(( $(date +%s) + READY_TIMEOUT ))
while :; do
  state=$(sinfo -h -N -n "$H" -o '%T' 2>/dev/null | head -n1 || true)
  case "$state" in
    idle|mixed|allocated|completing) break ;;
    down*|drain*|fail*) scontrol update NodeName="$H" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  [ "$(date +%s)" -lt "$deadline" ] || die "node $H not ready after ${READY_TIMEOUT}s (state='$state')"
  sleep 0.2
done
log "node $H is $state; pids: $(tr '\n' ' ' <"$PIDS_FILE")"
echo "slurm ready"
