#!/usr/bin/env bash
# Set up a fresh Debian 12+ / Ubuntu 24.04+ machine and run the demo or the test suite:
#   ./install.sh demo    installs what is needed, then runs `shopfloor demo`
#   ./install.sh test    installs what is needed (and the test tools), then runs ruff and pytest
# It installs Debian packages only when they are missing, and the Python packages into ./.venv.
set -euo pipefail
cd "$(dirname "$0")"
what=${1:-}
case "$what" in
  demo|test) ;;
  *) echo "usage: ./install.sh demo|test" >&2; exit 2 ;;
esac

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
has mosquitto || missing+=(mosquitto)
has mosquitto_pub || missing+=(mosquitto-clients)
has influxd || missing+=(influxdb)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ "$what" = test ]; then
  has chromium || missing+=(chromium)  # the huddle page is checked in real headless Chromium
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "error: Python 3.11 or newer is needed (python3 is $(python3 --version))" >&2; exit 2; }
[ -x .venv/bin/python ] || python3 -m venv .venv
if [ "$what" = test ]; then extras=".[test]"; else extras=".[field,dashboards]"; fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e "$extras"

if [ "$what" = demo ]; then
  exec .venv/bin/shopfloor demo
fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q
