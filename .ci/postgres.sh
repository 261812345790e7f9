#!/usr/bin/env bash
# Installs (if missing) and starts a local PostgreSQL for the ledger contract
# tests, and makes sure the role and database they use exist:
#   role scripwire / password scripwire, LOGIN CREATEDB (tests create and drop
#   a throwaway database each), database scripwire owned by it.
# Idempotent: safe to run on a machine where all of this is already done.
# Must run as root (apt-get, pg_ctlcluster). It does not export anything; the
# caller sets SCRIPWIRE_TEST_PG_URL=postgres://scripwire:scripwire@127.0.0.1:5432/scripwire
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

# Debian's wrapper scripts (pg_ctlcluster, pg_lsclusters) and a server binary.
if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  log "installing postgresql from apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi

# The newest installed major version (15 on Debian 12), not a hard-coded one.
major=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
if [ -z "$major" ]; then
  log "no PostgreSQL server found under /usr/lib/postgresql"
  exit 1
fi

# pg_lsclusters -h columns: version cluster port status owner datadir logfile
if ! pg_lsclusters -h | awk -v v="$major" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
  log "creating cluster $major/main"
  pg_createcluster "$major" main >/dev/null
fi
port=$(pg_lsclusters -h | awk -v v="$major" '$1 == v && $2 == "main" { print $3 }')
status=$(pg_lsclusters -h | awk -v v="$major" '$1 == v && $2 == "main" { print $4 }')
if [ "$status" != "online" ]; then
  log "starting cluster $major/main on port $port"
  pg_ctlcluster "$major" main start
fi

# Wait until it accepts connections (bounded: 30 s).
for _ in $(seq 1 60); do
  if pg_isready -q -h 127.0.0.1 -p "$port"; then break; fi
  sleep 0.5
done
if ! pg_isready -q -h 127.0.0.1 -p "$port"; then
  log "PostgreSQL $major/main did not become ready; see /var/log/postgresql/postgresql-$major-main.log"
  exit 1
fi

as_postgres() { runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qtA "$@"; }

as_postgres -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'scripwire') THEN
    CREATE ROLE scripwire LOGIN CREATEDB PASSWORD 'scripwire';
  ELSE
    ALTER ROLE scripwire LOGIN CREATEDB PASSWORD 'scripwire';
  END IF;
END \$\$;"
if [ "$(as_postgres -c "SELECT 1 FROM pg_database WHERE datname = 'scripwire'")" != "1" ]; then
  as_postgres -c "CREATE DATABASE scripwire OWNER scripwire"
fi

if [ "$port" != "5432" ]; then
  log "note: cluster $major/main listens on port $port, not 5432; point SCRIPWIRE_TEST_PG_URL at it"
fi
log "PostgreSQL $major ready on 127.0.0.1:$port (role and database scripwire)"
