#!/usr/bin/env bash
# Make Debian's Chromium (and a CJK font, so the pages' Chinese labels render in screenshots)
# available for tests/e2e. The Python `playwright` package drives it through executable_path:
# never `playwright install`, which downloads a browser build. Idempotent.
set -euo pipefail

CHROMIUM="${SOC_CHROMIUM:-/usr/bin/chromium}"
CJK_FONT="/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"

packages=()
[ -x "$CHROMIUM" ] || packages+=(chromium)
[ -f "$CJK_FONT" ] || packages+=(fonts-wqy-microhei)

if [ "${#packages[@]}" -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null

[ -x "$CHROMIUM" ] || { echo "chromium still missing at $CHROMIUM after apt-get install" >&2; exit 1; }
"$CHROMIUM" --version 2>/dev/null | head -n 1 || true
