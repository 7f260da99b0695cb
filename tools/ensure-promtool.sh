#!/usr/bin/env bash
# Make `promtool` available for tests/ops (Debian's prometheus package). Idempotent.
# The package's postinst may start a prometheus daemon; tests only need the CLI,
# so any daemon that the install started is stopped again.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

# prometheus daemons running before the install are not ours to stop.
before="$(pgrep -x prometheus || true)"

$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null

after="$(pgrep -x prometheus || true)"
started=""
for pid in $after; do
    if ! grep -qx "$pid" <<<"$before"; then
        started="$started $pid"
    fi
done
if [ -n "$started" ]; then
    # Prefer the init system so it doesn't restart the daemon; then make sure.
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        $SUDO systemctl stop prometheus >/dev/null 2>&1 || true
        $SUDO systemctl disable prometheus >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/prometheus ]; then
        $SUDO /etc/init.d/prometheus stop >/dev/null 2>&1 || true
    fi
    for pid in $started; do
        $SUDO kill "$pid" 2>/dev/null || true
    done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        alive=""
        for pid in $started; do
            kill -0 "$pid" 2>/dev/null && alive="$alive $pid"
        done
        [ -z "$alive" ] && break
        sleep 0.5
    done
    for pid in $alive; do
        $SUDO kill -9 "$pid" 2>/dev/null || true
    done
fi

command -v promtool >/dev/null 2>&1 || { echo "promtool still missing after installing prometheus" >&2; exit 1; }
promtool --version 2>&1 | head -n 1
