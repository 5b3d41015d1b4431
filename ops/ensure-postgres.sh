#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers at 127.0.0.1:5432 and that the
# `postgres` user can connect over TCP without a password.
#
#   * A server that already answers is used as it is: never restarted or
#     reconfigured.
#   * Otherwise PostgreSQL is installed from Debian if missing, a cluster is
#     created if none exists, its pg_hba.conf is given trust rules for local
#     connections, and it is started.
#
# DEVELOPMENT / CI ONLY: the trust rules let anyone on this machine connect
# as any database user without a password. Do not run this on a server that
# holds real data. Durability settings (fsync, synchronous_commit) are never
# touched.
set -euo pipefail

HOST=127.0.0.1
PORT=5432

log() { printf 'postgres: %s\n' "$*"; }
warn() { printf 'postgres: WARNING: %s\n' "$*" >&2; }
die() {
    printf 'postgres: ERROR: %s\n' "$*" >&2
    exit 1
}

# Runs a command as root: directly when root, through sudo when available.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

is_ready() {
    command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$HOST" -p "$PORT" >/dev/null 2>&1
}

can_connect_as_postgres() {
    PGCONNECT_TIMEOUT=5 psql -w -h "$HOST" -p "$PORT" -U postgres -d postgres -tAc 'SELECT 1' >/dev/null 2>&1
}

check_postgres_login() {
    if ! command -v psql >/dev/null 2>&1; then
        warn "psql is not installed; cannot check that user postgres can log in"
    elif ! can_connect_as_postgres; then
        warn "the server at $HOST:$PORT answers, but user postgres cannot connect without a password;"
        warn "the tests need: psql -h $HOST -p $PORT -U postgres -d postgres"
    fi
}

# ------------------------------------------------------------ already up?

if is_ready; then
    log "already running"
    check_postgres_login
    exit 0
fi

# --------------------------------------------------------------- install

have_server_binaries() { ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; }

if ! have_server_binaries || ! command -v pg_isready >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
    log "installing PostgreSQL from Debian (apt-get)"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql postgresql-client
    have_server_binaries || die "apt-get install finished but no /usr/lib/postgresql/*/bin/postgres exists"
    # The package may have started a server on its own.
    if is_ready; then
        log "already running"
        check_postgres_login
        exit 0
    fi
fi

command -v pg_lsclusters >/dev/null 2>&1 || die "pg_lsclusters not found (package postgresql-common missing?)"

# --------------------------------------------------------------- cluster

# pg_lsclusters -h: "ver cluster port status owner datadir logfile".
clusters=$(pg_lsclusters -h 2>/dev/null || true)

if [ -z "$clusters" ]; then
    version=''
    for bin in /usr/lib/postgresql/*/bin/postgres; do
        v=${bin#/usr/lib/postgresql/}
        v=${v%%/*}
        if [ -z "$version" ] || [ "$(printf '%s\n%s\n' "$version" "$v" | sort -V | tail -n 1)" = "$v" ]; then
            version=$v
        fi
    done
    [ -n "$version" ] || die "cannot tell which PostgreSQL version is installed"
    log "no cluster exists; creating $version/main on port $PORT"
    as_root pg_createcluster "$version" main -p "$PORT"
    clusters=$(pg_lsclusters -h)
fi

# Use the cluster configured for port 5432.
version=''
name=''
read -r version name < <(awk -v port="$PORT" '$3 == port { print $1, $2; exit }' <<<"$clusters") || true
if [ -z "${version:-}" ] || [ -z "${name:-}" ]; then
    printf '%s\n' "$clusters" >&2
    die "clusters exist, but none is configured for port $PORT; set 'port = $PORT' in one of them or create one with: pg_createcluster <version> main -p $PORT"
fi

# ------------------------------------------------------------- pg_hba.conf

hba=/etc/postgresql/$version/$name/pg_hba.conf
[ -f "$hba" ] || die "$hba not found"

marker='# billclear dev/ci: trust local connections'
if ! grep -qF "$marker" "$hba"; then
    warn "DEVELOPMENT/CI ONLY: adding 'trust' rules for local connections to $hba"
    warn "anyone on this machine can then connect as any database user without a password"
    tmp=$(mktemp)
    trap 'rm -f "$tmp"' EXIT
    # pg_hba.conf is read top down and the first matching line wins, so the
    # rules go first. `cat >` keeps the file's owner and mode.
    {
        printf '%s\n' "$marker"
        printf '%s\n' '# (added by ops/ensure-postgres.sh; for development and CI machines only)'
        printf '%s\n' 'local   all   all                  trust'
        printf '%s\n' 'host    all   all   127.0.0.1/32   trust'
        printf '%s\n' 'host    all   all   ::1/128        trust'
        printf '%s\n' '# end billclear dev/ci'
        printf '\n'
        as_root cat "$hba"
    } >"$tmp"
    # shellcheck disable=SC2016 # $1 and $2 expand in the inner shell
    as_root sh -c 'cat "$1" > "$2"' sh "$tmp" "$hba"
fi

# ----------------------------------------------------------------- start

# The socket directory lives in /run, which a container may not have kept.
if [ ! -d /var/run/postgresql ]; then
    as_root install -d -o postgres -g postgres -m 2775 /var/run/postgresql
fi

log "starting cluster $version/$name"
if ! as_root pg_ctlcluster --skip-systemctl-redirect "$version" "$name" start; then
    warn "pg_ctlcluster failed; trying: service postgresql start"
    as_root service postgresql start || true
fi

for _ in $(seq 1 30); do
    if is_ready; then
        break
    fi
    sleep 1
done

if ! is_ready; then
    log_file=$(awk -v v="$version" -v n="$name" '$1 == v && $2 == n { print $7 }' < <(pg_lsclusters -h) || true)
    die "PostgreSQL $version/$name did not answer at $HOST:$PORT within 30 s; see ${log_file:-/var/log/postgresql/}"
fi

if ! can_connect_as_postgres; then
    die "the server answers at $HOST:$PORT but user postgres cannot connect without a password; check $hba"
fi

log "started"
