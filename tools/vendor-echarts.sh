#!/usr/bin/env bash
# Vendor Apache ECharts (the leadership view's charts, /stats) from the npm registry: the pinned
# version's dist/echarts.min.js, checked against its SHA-256, into streams/http/static/ (served as
# /static/echarts.min.js; no front-end build step). Run it to re-vendor or upgrade (change both
# pins); `--check` only verifies the committed copy. Idempotent.
set -euo pipefail

VERSION="5.5.1"
SHA256="e84270bd0cd5bdf60fefc26d00c2a391cb2e81f4d26a7a9ee16185a54773a3cf"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="$ROOT/streams/http/static/echarts.min.js"

have() { [ -f "$TARGET" ] && echo "$SHA256  $TARGET" | sha256sum --check --status; }

if [ "${1:-}" = "--check" ]; then
    have || { echo "$TARGET is not echarts $VERSION (sha256 $SHA256); run tools/vendor-echarts.sh" >&2; exit 1; }
    exit 0
fi
have && exit 0

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "echarts@$VERSION" >/dev/null && tar xzf "echarts-$VERSION.tgz" package/dist/echarts.min.js package/LICENSE package/NOTICE)
echo "$SHA256  $work/package/dist/echarts.min.js" | sha256sum --check --status \
    || { echo "echarts $VERSION from npm does not match the pinned sha256" >&2; exit 1; }
cp "$work/package/dist/echarts.min.js" "$TARGET"
cat "$work/package/NOTICE" "$work/package/LICENSE" > "$ROOT/streams/http/static/echarts.LICENSE.txt"
echo "vendored echarts $VERSION into $TARGET"
