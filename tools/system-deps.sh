#!/usr/bin/env bash
# Debian packages the tests need, installed only when missing (CI machines start bare).
set -euo pipefail

need_apt=()
# PostgreSQL server binaries (initdb, pg_ctl) for the throwaway test cluster.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need_apt+=(postgresql)
fi
if ! command -v curl >/dev/null 2>&1; then
  need_apt+=(curl)
fi
# systemd-analyze, to verify deploy/'s service and timer units (~10 MB; nothing starts).
if ! command -v systemd-analyze >/dev/null 2>&1; then
  need_apt+=(systemd)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
