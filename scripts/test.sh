#!/usr/bin/env bash
# `make test`: start what the suite needs (installing it first when root), then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var test-artifacts
# test-setup.sh prints KYSO_TEST_PG_URL=… on stdout (its log goes to stderr).
pg_line=$(bash scripts/test-setup.sh)
export "${pg_line?}"
export PYTHONDONTWRITEBYTECODE=1
workers="${KYSO_TEST_WORKERS:-2}"
set +e
.venv/bin/python -m pytest -p no:cacheprovider -n "$workers" --dist loadfile "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$status"
