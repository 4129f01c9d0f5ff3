#!/usr/bin/env bash
# Prepare this machine for `make test`: system packages (as root) and a private
# PostgreSQL server for the test suite. Idempotent: safe to run again and again.
#
#   scripts/test-setup.sh                      # prints KYSO_TEST_PG_URL=... on stdout
#   export "$(scripts/test-setup.sh)"          # ...and use it
#
# Everything but the final KYSO_TEST_PG_URL=... line goes to stderr.
#
# Environment:
#   KYSO_TEST_VAR      state dir (default: $PWD/var/test); the server lives in $KYSO_TEST_VAR/pg
#   KYSO_TEST_PG_PORT  TCP port on 127.0.0.1 (default: 55432)
#
# As root the server runs as the `postgres` system user (PostgreSQL refuses to
# run as root); as a normal user it runs as that user. Stop it with
# scripts/test-teardown.sh.
set -euo pipefail

log() { printf 'test-setup: %s\n' "$*" >&2; }
warn() { printf 'test-setup: WARNING: %s\n' "$*" >&2; }
die() { printf 'test-setup: ERROR: %s\n' "$*" >&2; exit 1; }

PORT="${KYSO_TEST_PG_PORT:-55432}"
VAR="${KYSO_TEST_VAR:-$PWD/var/test}"
mkdir -p "$VAR"
VAR="$(cd "$VAR" && pwd -P)"
IS_ROOT=0
[[ "$(id -u)" == 0 ]] && IS_ROOT=1

# --------------------------------------------------------------------------
# 1. System packages
# --------------------------------------------------------------------------
PACKAGES=(postgresql softhsm2 poppler-utils xmlsec1 libnss3-tools openssl fonts-dejavu-core chromium)

pkg_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${PACKAGES[@]}"; do
        pkg_installed "$p" || missing+=("$p")
    done
else
    # Not a Debian system: look for the tools themselves.
    declare -A TOOL=([postgresql]=pg_ctl [softhsm2]=softhsm2-util [poppler-utils]=pdftoppm
        [xmlsec1]=xmlsec1 [libnss3-tools]=certutil [openssl]=openssl [chromium]=chromium)
    for p in "${!TOOL[@]}"; do
        if [[ $p == postgresql ]]; then
            compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null || command -v pg_ctl >/dev/null \
                || missing+=("$p")
        else
            command -v "${TOOL[$p]}" >/dev/null 2>&1 || missing+=("$p")
        fi
    done
fi

if ((${#missing[@]})); then
    if ((IS_ROOT)) && command -v apt-get >/dev/null 2>&1; then
        log "installing: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null || die "apt-get update failed"
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
            || die "apt-get install ${missing[*]} failed"
    else
        warn "missing packages: ${missing[*]}"
        warn "install them with: sudo apt-get install --no-install-recommends ${missing[*]}"
        warn "tests that need them will be skipped"
    fi
fi

# --------------------------------------------------------------------------
# 2. PostgreSQL binaries
# --------------------------------------------------------------------------
PGBIN=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
    [[ -x "$d/pg_ctl" && -x "$d/postgres" ]] && PGBIN="$d"
done
if [[ -z "$PGBIN" ]] && command -v pg_ctl >/dev/null 2>&1; then
    PGBIN="$(dirname "$(command -v pg_ctl)")"
fi
if [[ -z "$PGBIN" ]]; then
    ((IS_ROOT)) && die "PostgreSQL binaries not found (looked in /usr/lib/postgresql/*/bin)"
    warn "PostgreSQL is not installed: the postgres tests will be skipped"
    exit 0
fi
PSQL="$PGBIN/psql";       [[ -x $PSQL ]] || PSQL="$(command -v psql)"
PG_ISREADY="$PGBIN/pg_isready"; [[ -x $PG_ISREADY ]] || PG_ISREADY="$(command -v pg_isready)"
log "using PostgreSQL in $PGBIN"

# What a failure to get a server means: fatal as root, a warning otherwise.
pg_fail() {
    if ((IS_ROOT)); then die "$*"; fi
    warn "$*"
    warn "the postgres tests will be skipped"
    exit 0
}

# --------------------------------------------------------------------------
# 3. Who runs the server, and where its files live
# --------------------------------------------------------------------------
if ((IS_ROOT)); then
    if ! id -u postgres >/dev/null 2>&1; then
        log "creating system user postgres"
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres \
            || die "could not create the postgres system user"
    fi
    as_pg() { (cd / && runuser -u postgres -- "$@"); }
else
    as_pg() { (cd / && "$@"); }
fi

pg_can_use() { as_pg sh -c 'test -d "$1" && test -w "$1" && test -x "$1"' _ "$1"; }

PGDIR="$VAR/pg"
mkdir -p "$PGDIR"
if ((IS_ROOT)); then
    chown postgres:postgres "$PGDIR"
    chmod 0755 "$PGDIR"
    if ! pg_can_use "$PGDIR"; then
        # A parent directory (e.g. /root) is not searchable by postgres.
        fallback="/var/tmp/kyso-test-pg-$PORT"
        log "user postgres cannot reach $PGDIR; using $fallback instead"
        rmdir "$PGDIR" 2>/dev/null || true
        PGDIR="$fallback"
        mkdir -p "$PGDIR"
        chown postgres:postgres "$PGDIR"
        chmod 0755 "$PGDIR"
        pg_can_use "$PGDIR" || die "user postgres cannot write to $PGDIR either"
    fi
fi
DATA="$PGDIR/data"
RUN="$PGDIR/run"
LOGFILE="$PGDIR/postgres.log"
as_pg mkdir -p "$RUN"
# A unix socket path may not be longer than 107 bytes.
if (( ${#RUN} + 20 > 107 )); then
    RUN="/tmp/kyso-test-pg-$PORT"
    mkdir -p "$RUN"
    ((IS_ROOT)) && chown postgres:postgres "$RUN"
    log "socket path too long; using $RUN for the unix socket"
fi

is_ready() { "$PG_ISREADY" -q -h 127.0.0.1 -p "$PORT" -t 2 >/dev/null 2>&1; }

# --------------------------------------------------------------------------
# 4. Start (or reuse) the server
# --------------------------------------------------------------------------
if is_ready; then
    log "a PostgreSQL server already answers on 127.0.0.1:$PORT; reusing it"
else
    if [[ ! -s "$DATA/PG_VERSION" ]]; then
        log "initdb $DATA"
        as_pg "$PGBIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C \
            --no-instructions >"$PGDIR/initdb.log" 2>&1 \
            || { cat "$PGDIR/initdb.log" >&2; pg_fail "initdb failed"; }
        printf "\ninclude_if_exists = 'kyso-test.conf'\n" | as_pg tee -a "$DATA/postgresql.conf" >/dev/null
    fi
    # Rewritten every time so a changed port or var dir takes effect.
    as_pg tee "$DATA/kyso-test.conf" >/dev/null <<EOF
# Written by scripts/test-setup.sh: a throwaway server for the test suite.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$RUN'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    as_pg tee "$DATA/pg_hba.conf" >/dev/null <<'EOF'
# Written by scripts/test-setup.sh: trust, and only on this machine.
local   all   all                  trust
host    all   all   127.0.0.1/32   trust
EOF
    log "starting PostgreSQL on 127.0.0.1:$PORT (log: $LOGFILE)"
    if ! as_pg "$PGBIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 60 start >/dev/null 2>&1; then
        tail -n 30 "$LOGFILE" >&2 2>/dev/null || true
        pg_fail "PostgreSQL did not start (see $LOGFILE)"
    fi
    is_ready || pg_fail "PostgreSQL started but does not answer on 127.0.0.1:$PORT"
fi
# Where teardown finds the server.
printf '%s\n' "$DATA" >"$VAR/pg.datadir"

# --------------------------------------------------------------------------
# 5. Role kyso (superuser) and database kyso_test
# --------------------------------------------------------------------------
psql_as() { # user, psql args...
    local user="$1"; shift
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U "$user" -d postgres -tA "$@"
}
ADMIN=""
for u in postgres kyso "$(id -un)"; do
    if [[ "$(psql_as "$u" -c 'select rolsuper from pg_roles where rolname = current_user' \
            2>/dev/null || true)" == t ]]; then
        ADMIN="$u"; break
    fi
done
[[ -n "$ADMIN" ]] || pg_fail "cannot connect as a superuser to the server on 127.0.0.1:$PORT"

if [[ "$(psql_as "$ADMIN" -c "select 1 from pg_roles where rolname = 'kyso'")" != 1 ]]; then
    log "creating role kyso"
    psql_as "$ADMIN" -c 'create role kyso login superuser' || pg_fail "could not create role kyso"
fi
if [[ "$(psql_as "$ADMIN" -c "select 1 from pg_database where datname = 'kyso_test'")" != 1 ]]; then
    log "creating database kyso_test"
    psql_as "$ADMIN" -c 'create database kyso_test owner kyso' \
        || pg_fail "could not create database kyso_test"
fi

URL="postgresql+psycopg://kyso@127.0.0.1:$PORT/kyso_test"
printf 'KYSO_TEST_PG_URL=%s\n' "$URL" >"$VAR/pg.env"
log "ready: $URL"
printf 'KYSO_TEST_PG_URL=%s\n' "$URL"
