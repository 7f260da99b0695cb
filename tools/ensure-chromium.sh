#!/usr/bin/env bash
# Make Debian's headless-capable Chromium available for tests/e2e (driven by the Python
# `playwright` package with executable_path, never `playwright install`). Idempotent.
set -euo pipefail

CHROMIUM="${SOC_CHROMIUM:-/usr/bin/chromium}"

if [ -x "$CHROMIUM" ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null

[ -x "$CHROMIUM" ] || { echo "chromium still missing at $CHROMIUM after apt-get install" >&2; exit 1; }
"$CHROMIUM" --version 2>/dev/null | head -n 1 || true
