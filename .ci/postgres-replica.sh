#!/usr/bin/env bash
# PostgreSQL primary + synchronous streaming standby on loopback, for the
# failover torture (npm run torture -- --failover) and as the operator recipe
# in docs/operations.md. Debian's postgresql-common wrappers; two clusters of
# the newest installed major version, named swnode1/swnode2, on ports 5441 and
# 5442 (never 5432: that one is the test server). Must run as root.
#
#   postgres-replica.sh setup          create both, node1 primary, node2 its sync standby
#   postgres-replica.sh status         "primary=<port> standby=<port> sync=<state>"
#   postgres-replica.sh kill-primary   SIGKILL every process of the primary (a dead machine)
#   postgres-replica.sh promote        promote the standby; it becomes the primary (no standby yet)
#   postgres-replica.sh rebuild        make the dead node a fresh sync standby of the new primary
#   postgres-replica.sh teardown       stop and drop both clusters
#
# Role scripwire/scripwire (LOGIN CREATEDB REPLICATION) and database scripwire_ha.
# Center: scripwire center serve --database "postgres://scripwire:scripwire@127.0.0.1:5441/scripwire_ha,postgres://scripwire:scripwire@127.0.0.1:5442/scripwire_ha"
set -euo pipefail

major=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
NODES=(swnode1 swnode2)
declare -A PORT=([swnode1]=5441 [swnode2]=5442)
STATE=/var/lib/postgresql/scripwire-replica.state   # the current primary's name
log() { echo "postgres-replica.sh: $*" >&2; }
psql_on() { local port=$1; shift; runuser -u postgres -- psql -p "$port" -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qtA "$@"; }
psql_local() { local port=$1; shift; runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qtA "$@"; }
other() { [ "$1" = swnode1 ] && echo swnode2 || echo swnode1; }
primary() { cat "$STATE"; }
datadir() { echo "/var/lib/postgresql/$major/$1"; }
conf() { echo "/etc/postgresql/$major/$1"; }

wait_ready() { # wait_ready <port> [seconds]
  for _ in $(seq 1 $(( ${2:-30} * 5 ))); do pg_isready -q -h 127.0.0.1 -p "$1" && return 0; sleep 0.2; done
  log "port $1 not ready"; return 1
}

configure_node() { # settings both nodes need, primary or standby
  local n=$1 c; c=$(conf "$n")
  cat >"$c/conf.d/scripwire-replica.conf" <<CONF
listen_addresses = '127.0.0.1'
port = ${PORT[$n]}
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
wal_keep_size = '256MB'
# Durability: a COMMIT returns once the standby has flushed it too (set on the
# primary only, see set_sync); fsync stays on.
synchronous_commit = on
fsync = on
CONF
  # Loopback replication and logins for the scripwire role; local superuser via peer.
  cat >"$c/pg_hba.conf" <<HBA
local   all             postgres                                peer
local   all             all                                     peer
host    all             all             127.0.0.1/32            scram-sha-256
host    replication     scripwire       127.0.0.1/32            scram-sha-256
HBA
}

set_sync() { # set_sync <primary> <standby-name or empty>
  psql_local "${PORT[$1]}" -c "ALTER SYSTEM SET synchronous_standby_names = '${2}'" -c "SELECT pg_reload_conf()" >/dev/null
}

gone() { # gone <pid>: no such process, or a zombie its new parent has not reaped yet
  [ ! -e "/proc/$1" ] || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]
}

clear_stale_socket_lock() { # clear_stale_socket_lock <port>
  # A SIGKILLed postmaster leaves its socket lock behind, and until the orphan is
  # reaped (our PID 1 reaps lazily) kill(pid, 0) still succeeds, so PostgreSQL
  # refuses to start ("lock file ... already exists"). The data directory is
  # rebuilt from scratch here, so a lock naming a dead (or zombie) pid is stale.
  local lock="/var/run/postgresql/.s.PGSQL.$1.lock" pid
  [ -f "$lock" ] || return 0
  pid=$(head -n 1 "$lock" | tr -d ' -')
  if [ -n "$pid" ] && gone "$pid"; then rm -f "$lock" "/var/run/postgresql/.s.PGSQL.$1"; fi
}

make_standby() { # make_standby <node> <primary>: fresh base backup, streaming as application_name=<node>
  local n=$1 p=$2 d; d=$(datadir "$n")
  pg_ctlcluster "$major" "$n" stop -m immediate 2>/dev/null || true
  clear_stale_socket_lock "${PORT[$n]}"
  rm -rf "$d"; mkdir -p "$d"; chown postgres:postgres "$d"; chmod 700 "$d"
  runuser -u postgres -- env PGPASSWORD=scripwire pg_basebackup -h 127.0.0.1 -p "${PORT[$p]}" -U scripwire -D "$d" -X stream -R -c fast \
    -d "application_name=$n"
  # -R wrote primary_conninfo with the password from the environment; keep it, add our name.
  pg_ctlcluster "$major" "$n" start
  wait_ready "${PORT[$n]}"
}

wait_sync() { # until the standby is streaming as sync (bounded)
  local p; p=$(primary)
  for _ in $(seq 1 150); do
    [ "$(psql_local "${PORT[$p]}" -c "SELECT sync_state FROM pg_stat_replication WHERE application_name = '$(other "$p")'")" = sync ] && return 0
    sleep 0.2
  done
  log "standby never became synchronous"; return 1
}

cmd=${1:-}
case "$cmd" in
  setup)
    for n in "${NODES[@]}"; do
      pg_ctlcluster "$major" "$n" stop -m immediate 2>/dev/null || true
      pg_dropcluster "$major" "$n" 2>/dev/null || true
    done
    pg_createcluster "$major" swnode1 -p "${PORT[swnode1]}" >/dev/null
    pg_createcluster "$major" swnode2 -p "${PORT[swnode2]}" >/dev/null
    configure_node swnode1; configure_node swnode2
    pg_ctlcluster "$major" swnode1 start
    wait_ready "${PORT[swnode1]}"
    psql_local "${PORT[swnode1]}" -c "CREATE ROLE scripwire LOGIN CREATEDB REPLICATION PASSWORD 'scripwire'" -c "CREATE DATABASE scripwire_ha OWNER scripwire" >/dev/null
    echo swnode1 >"$STATE"
    make_standby swnode2 swnode1
    set_sync swnode1 swnode2
    wait_sync
    log "primary swnode1:${PORT[swnode1]}, synchronous standby swnode2:${PORT[swnode2]}"
    ;;
  status)
    p=$(primary); s=$(other "$p")
    sync=$(psql_local "${PORT[$p]}" -c "SELECT COALESCE(MAX(sync_state), 'none') FROM pg_stat_replication" 2>/dev/null || echo down)
    echo "primary=${PORT[$p]} standby=${PORT[$s]} sync=$sync"
    ;;
  kill-primary)
    p=$(primary)
    pid=$(head -n 1 "$(datadir "$p")/postmaster.pid")
    # Every process of that server, children first, by id: a machine that died.
    kids=$(ps -o pid= --ppid "$pid")
    for c in $kids; do kill -9 "$c" 2>/dev/null || true; done
    kill -9 "$pid"
    # Return only once they are really dead (bounded: 30 s), so a restart of this
    # node never meets its own ghost.
    for _ in $(seq 1 300); do
      alive=0; for x in $pid $kids; do gone "$x" || alive=1; done
      [ "$alive" = 0 ] && break; sleep 0.1
    done
    log "SIGKILLed primary $p (postmaster $pid)"
    ;;
  promote)
    p=$(primary); s=$(other "$p")
    pg_ctlcluster "$major" "$s" promote
    for _ in $(seq 1 150); do [ "$(psql_local "${PORT[$s]}" -c "SELECT pg_is_in_recovery()")" = f ] && break; sleep 0.2; done
    # No standby yet: a synchronous_standby_names left over would make every commit wait.
    set_sync "$s" ""
    echo "$s" >"$STATE"
    log "promoted $s (port ${PORT[$s]})"
    ;;
  rebuild)
    p=$(primary); s=$(other "$p")
    make_standby "$s" "$p"
    set_sync "$p" "$s"
    wait_sync
    log "$s is the synchronous standby of $p again"
    ;;
  teardown)
    for n in "${NODES[@]}"; do
      pg_ctlcluster "$major" "$n" stop -m immediate 2>/dev/null || true
      pg_dropcluster "$major" "$n" 2>/dev/null || true
    done
    rm -f "$STATE"
    ;;
  *) echo "usage: $0 setup|status|kill-primary|promote|rebuild|teardown" >&2; exit 2 ;;
esac
