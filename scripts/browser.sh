#!/usr/bin/env bash
# The browser test's Chromium (analytics/tests/test_browser_analytics.py): Debian's
# `chromium` package, driven by the Playwright pip package (never `playwright install`,
# which downloads its own browser builds). Installs it when it is missing; needs root
# (CI runs as root) or passwordless sudo. Prints what it does.
set -euo pipefail
CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ -x "$CHROMIUM_PATH" ] || command -v chromium >/dev/null 2>&1; then
  echo "browser: $(command -v chromium || echo "$CHROMIUM_PATH") is installed"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "browser: chromium is missing and this is not root: run" >&2
    echo "  apt-get install -y --no-install-recommends chromium" >&2
    exit 1
  fi
fi
echo "browser: chromium is missing; installing Debian's package"
install() {
  echo "+ $SUDO apt-get install -y --no-install-recommends chromium"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium
}
if ! install; then  # stale package lists: refresh them once and try again
  echo "+ $SUDO apt-get update"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  install
fi
echo "browser: installed $(command -v chromium)"
