#!/usr/bin/env bash
# Make sure "$1 -m venv" works: Debian and Ubuntu ship venv/ensurepip in a separate package.
set -euo pipefail
py="${1:-python3}"
if ! command -v "$py" >/dev/null; then
  echo "kyso needs Python 3.11+ ($py not found)." >&2; exit 1
fi
"$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "kyso needs Python 3.11 or newer; $py is $("$py" --version 2>&1)." >&2; exit 1; }
if "$py" -c 'import ensurepip, venv' 2>/dev/null; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  ver=$("$py" -c 'import sys; print(f"{sys.version_info.major}.{sys.version_info.minor}")')
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "python${ver}-venv" >/dev/null 2>&1 || apt-get install -y -qq python3-venv >/dev/null
else
  echo "Python's venv module is missing: sudo apt-get install python3-venv" >&2; exit 1
fi
