#!/usr/bin/env bash
# Debian packages sipio runs on. Idempotent and non-interactive: installs only what is missing.
set -euo pipefail

PACKAGES=(
  kamailio kamailio-python3-modules kamailio-extra-modules kamailio-utils-modules
  rtpengine-daemon redis-server postgresql sip-tester python3-venv make
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "system packages: all present"
  exit 0
fi

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  SUDO="sudo"
fi
echo "system packages: installing ${missing[*]}"
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
