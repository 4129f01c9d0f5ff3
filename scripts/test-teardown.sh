#!/usr/bin/env bash
# Stop the private PostgreSQL server that scripts/test-setup.sh started.
# Its data stays in place, so the next test-setup.sh starts it again quickly;
# `rm -rf var/test` removes it for good.
#
# Environment: KYSO_TEST_VAR (default: $PWD/var/test), as for test-setup.sh.
set -euo pipefail

log() { printf 'test-teardown: %s\n' "$*" >&2; }

VAR="${KYSO_TEST_VAR:-$PWD/var/test}"
DATA=""
if [[ -s "$VAR/pg.datadir" ]]; then
    DATA="$(cat "$VAR/pg.datadir")"
elif [[ -d "$VAR/pg/data" ]]; then
    DATA="$VAR/pg/data"
fi
if [[ -z "$DATA" || ! -s "$DATA/PG_VERSION" ]]; then
    log "no test PostgreSQL data directory under $VAR; nothing to stop"
    exit 0
fi

PGBIN="/usr/lib/postgresql/$(cat "$DATA/PG_VERSION")/bin"
PG_CTL="$PGBIN/pg_ctl"
[[ -x "$PG_CTL" ]] || PG_CTL="$(command -v pg_ctl || true)"
[[ -n "$PG_CTL" ]] || { log "pg_ctl not found; cannot stop the server in $DATA" >&2; exit 1; }

if [[ "$(id -u)" == 0 ]]; then
    as_owner() { (cd / && runuser -u "$(stat -c %U "$DATA")" -- "$@"); }
else
    as_owner() { (cd / && "$@"); }
fi

if as_owner "$PG_CTL" -D "$DATA" status >/dev/null 2>&1; then
    log "stopping PostgreSQL ($DATA)"
    as_owner "$PG_CTL" -D "$DATA" -m fast -w -t 60 stop >/dev/null
else
    log "PostgreSQL ($DATA) is not running"
fi
