#!/usr/bin/env bash
# End-to-end tests of the dashboard in headless Chromium (Debian's
# `chromium`, driven by playwright-core). Builds nothing: it runs the debug
# binary that `cargo build` / `cargo test` already made, on a fresh SQLite
# database and a free port, with the demo accounts.
#
#   e2e/run.sh                                  # screenshots into e2e/artifacts/
#   SCREENSHOT_DIR=docs/screenshots e2e/run.sh  # refresh the README's screenshots
#   e2e/run.sh --test-name-pattern=audit        # arguments go to node --test
#   E2E_DEBUG=1 e2e/run.sh                      # show the pages' console
#
# Needs `npm ci` in e2e/ first. SESSION_MANAGER_BIN overrides the binary,
# CHROMIUM the browser (default /usr/bin/chromium).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
bin="${SESSION_MANAGER_BIN:-$target/debug/session-manager}"

if [ ! -x "$bin" ]; then
  echo "e2e: no server binary at $bin; run 'cargo build' first" >&2
  exit 1
fi
if [ ! -d "$here/node_modules/playwright-core" ]; then
  echo "e2e: playwright-core is missing; run 'npm ci' in e2e/ first" >&2
  exit 1
fi
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  echo "e2e: no Chromium at $CHROMIUM (apt-get install chromium)" >&2
  exit 1
fi
screenshots="${SCREENSHOT_DIR:-$here/artifacts}"
case "$screenshots" in /*) ;; *) screenshots="$PWD/$screenshots" ;; esac
mkdir -p "$screenshots"
export SCREENSHOT_DIR="$screenshots"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

export DATABASE_URL="sqlite://$work/e2e.db?mode=rwc"
"$bin" demo >"$work/demo.log" 2>&1

# Port 0: the server picks a free port and logs it.
BIND=127.0.0.1:0 LOG_FORMAT=json WEBHOOK_ALLOW_PRIVATE=true RUST_LOG="${RUST_LOG:-info,sqlx=warn}" \
  "$bin" serve 2>"$work/server.log" &
server_pid=$!

address=""
for _ in $(seq 1 100); do
  address="$(grep -o '"address":"[^"]*"' "$work/server.log" | head -n 1 | cut -d'"' -f4 || true)"
  [ -n "$address" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "e2e: the server did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$address" ]; then
  echo "e2e: the server did not report its address" >&2
  cat "$work/server.log" >&2
  exit 1
fi
export BASE_URL="http://$address"
echo "e2e: server $bin on $BASE_URL, screenshots in $SCREENSHOT_DIR"

status=0
(cd "$here" && node --test --test-concurrency=1 "$@" tests/*.test.mjs) || status=$?
if [ "$status" -ne 0 ] && [ -n "${E2E_SHOW_SERVER_LOG:-}" ]; then
  tail -n 100 "$work/server.log" >&2
fi
exit "$status"
