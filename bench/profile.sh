#!/usr/bin/env bash
# Instructions per request of the release server under callgrind (issue
# 21): the same binary gives the same count however busy the machine is,
# unlike req/s. Seeds a small SQLite database, starts the server under
# valgrind, warms each workload up, then counts N requests of each
# (instructions of all the server's threads, divided by N).
#
#   bench/profile.sh                 # W1, W4, W6; 400 requests each
#   bench/profile.sh W2              # revokeSession, a different session each request
#   bench/profile.sh -n 1000 W1      # one workload, more requests
#   BIN=/tmp/old-build bench/profile.sh  # another binary
#   bench/profile.sh --baseline      # also raw-axum's /sessions and /whoami (built by
#                                    # bench/run.sh --baseline into target/baseline/)
#
# The profiles stay in bench/results/profile-*/ (callgrind_annotate them).
#
# Needs valgrind (apt-get install -y valgrind) and a release build.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
N=400
CONNS=4
PORT=18090
BASELINE=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n) N="$2"; shift 2 ;;
    -c) CONNS="$2"; shift 2 ;;
    --baseline) BASELINE=1; shift ;;
    *) break ;;
  esac
done
WORKLOADS=("${@:-W1 W4 W6}")
read -r -a WORKLOADS <<<"${WORKLOADS[*]}"
BIN="${BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/session-manager}"
[ -x "$BIN" ] || { echo "no release build at $BIN (cargo build --release)" >&2; exit 1; }
OUT="$ROOT/bench/results/profile-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
PID=""
cleanup() { [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

URL="sqlite://$WORK/p.db?mode=rwc"
DATABASE_URL="$URL" RUST_LOG=warn "$BIN" seed --users 200 --sessions-per-user 5 --audit-events 2000 \
  --revocable-sessions $((N + 100)) >"$WORK/seed.json" 2>"$WORK/seed.log"
TOKEN="$(jq -r '.bench.tokens[0]' "$WORK/seed.json")"
REVOKER_TOKEN="$(jq -r '.revoker.tokens[0]' "$WORK/seed.json")"
# W2's warm-up takes the first 100 ids, its counted run the rest.
jq -r '.revocableSessionIds[]' "$WORK/seed.json" >"$WORK/ids.txt"
head -n 100 "$WORK/ids.txt" >"$WORK/ids-warmup.txt"
tail -n +101 "$WORK/ids.txt" >"$WORK/ids-run.txt"

# The same documents as bench/run.sh.
Q_W1='query SettingsSessions { sessions { count activeCount sessions { id sessionToken device ipAddress userAgent createdAt lastActiveAt expires isCurrent isActive impersonationReason impersonator { name email } } } }'
Q_W4='query { viewer { user { id email name role } session { id expires } } }'
Q_W2='mutation($id: UUID!) { revokeSession(id: $id) { id revokedAt isActive } }'
body() { jq -cn --arg q "$1" '{query: $q, variables: {}}'; }

(cd "$OUT" && DATABASE_URL="$URL" BIND="127.0.0.1:$PORT" RUST_LOG="${RUST_LOG:-info}" \
  exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind.out.%p" \
  "$BIN" serve) >"$OUT/server.log" 2>&1 &
PID=$!
for _ in $(seq 1 600); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done

run() { # run NAME METHOD PATH BODY STATUS [TOKEN IDS-PREFIX]
  local name="$1" method="$2" path="$3" body="$4" status="$5" total
  local token="${6:-$TOKEN}" warm=() counted=()
  [ -n "${7:-}" ] && warm=("$7-warmup.txt") counted=("$7-run.txt")
  # Warm-up, not counted (the first request of a document validates it).
  python3 bench/drive.py 127.0.0.1 "$PORT" "$method" "$path" "$token" "$body" 100 "$CONNS" "$status" "${warm[@]}"
  callgrind_control --zero "$PID" >/dev/null
  callgrind_control --instr=on "$PID" >/dev/null
  python3 bench/drive.py 127.0.0.1 "$PORT" "$method" "$path" "$token" "$body" "$N" "$CONNS" "$status" "${counted[@]}"
  callgrind_control --instr=off "$PID" >/dev/null
  callgrind_control --dump="$name" "$PID" >/dev/null
  sleep 1
  # One file per dump, all threads together.
  total=$(grep -l "^desc: Trigger: dump $name\$" "$OUT"/callgrind.out.* | xargs grep -h '^totals:' | awk '{s+=$2} END {print s}')
  printf '%-4s %8d instructions/request (%d requests, %s)\n' "$name" $((total / N)) "$N" "$OUT" | tee -a "$OUT/summary.txt"
}
for w in "${WORKLOADS[@]}"; do
  case "$w" in
    W1) run W1 POST /graphql "$(body "$Q_W1")" 200 ;;
    W4) run W4 POST /graphql "$(body "$Q_W4")" 200 ;;
    W6) run W6 GET /auth/check "" 200 ;;
    W2) run W2 POST /graphql "$(jq -cn --arg q "$Q_W2" '{query: $q, variables: {id: "@ID@"}}')" 200 \
          "$REVOKER_TOKEN" "$WORK/ids" ;;
    *) echo "unknown workload $w" >&2; exit 2 ;;
  esac
done

# The baseline, seeded alike, under the same count.
if [ "$BASELINE" = 1 ]; then
  RAW="$ROOT/target/baseline/release/raw-axum"
  [ -x "$RAW" ] || { echo "no baseline at $RAW (bench/run.sh --baseline builds it)" >&2; exit 1; }
  kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true
  (cd "$WORK" && DB_PATH=raw.db N_USERS=200 SESSIONS_PER_USER=5 "$RAW" seed) >"$WORK/raw-seed.log" 2>&1
  TOKEN="$(cat "$WORK/bench.token")"
  (cd "$WORK" && DB_PATH=raw.db PORT="$PORT" \
    exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind.out.%p" \
    "$RAW" serve) >"$OUT/server-baseline.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:$PORT/whoami" -H "authorization: Bearer $TOKEN" >/dev/null 2>&1 && break
    sleep 0.2
  done
  run B_sessions GET /sessions "" 200
  run B_whoami GET /whoami "" 200
fi
