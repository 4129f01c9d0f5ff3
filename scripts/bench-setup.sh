#!/usr/bin/env bash
# Load generators the benchmarks drive kyso with (wrk, ab); installed when root.
set -euo pipefail
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v ab >/dev/null || missing+=(apache2-utils)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "benchmarks need: ${missing[*]} (sudo apt-get install ${missing[*]})" >&2; exit 1
  fi
fi
