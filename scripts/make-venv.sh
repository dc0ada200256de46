#!/usr/bin/env bash
# The one virtualenv for everything, built with Debian's /usr/bin/python3: Kamailio's
# app_python3 embeds that same interpreter (libpython 3.11.2) and imports sipio from this venv.
set -euo pipefail
VENV="${1:-.venv}"
PY=/usr/bin/python3

if [[ -x "$VENV/bin/python" ]] && ! grep -qx "home = /usr/bin" "$VENV/pyvenv.cfg"; then
  echo "$VENV was built with another Python; rebuilding it with $PY"
  rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[dev]'
