#!/usr/bin/env bash
# Load benchmark of session-manager (issue 8): builds in release, seeds a
# fresh database, starts the server on 127.0.0.1 and drives it with wrk.
#
#   bench/run.sh                      # SQLite, 10 s per workload
#   bench/run.sh --db postgres        # PostgreSQL (a fresh database, dropped afterwards)
#   bench/run.sh --db both            # SQLite, then PostgreSQL, and PostgreSQL/SQLite ratios
#   bench/run.sh --duration 60        # longer runs
#   bench/run.sh --baseline           # also the raw axum + sqlx baseline, with ratios
#   BENCH_BIN=path bench/run.sh       # a binary built before (before/after comparisons)
#   bench/run.sh --webhook            # also W2 with one webhook endpoint attached, with the ratio
#   bench/run.sh --help               # every option
#
# Traffic goes to 127.0.0.1 only; every wrk run is bounded in time.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench/receiver.sh
. "$ROOT/bench/receiver.sh"
cd "$ROOT"

DB=sqlite
PG_ADMIN_URL="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DURATION=10
WARMUP=3
CONNECTIONS=32
THREADS=2
SIGNIN_CONNECTIONS=2
USERS=10000
SESSIONS_PER_USER=5
AUDIT_EVENTS=1000000
BENCH_USER_EVENTS=5000
SCALING=1
SMALL_AUDIT_EVENTS=10000
SMALL_USERS=2000
PORT=18080
KEEP=0
VACUUM=1
OUT=""
BASELINE=0
WEBHOOK=0
# The server's connections to PostgreSQL, which runs on this host: over
# loopback without TLS unless --pg-tls. (sqlx's default, sslmode=prefer,
# takes TLS whenever the cluster offers it, as Debian's does; on loopback
# that only costs CPU on both ends, in the cores the server shares.)
PG_PARAMS="?sslmode=disable"
BASELINE_DIR="${BASELINE_DIR:-$ROOT/../shared/baseline/raw-axum}"
ISSUE_USERS=1000
ARGS=("$@")

usage() {
  cat <<EOF
usage: bench/run.sh [options]
  --db sqlite|postgres|both
                           database (default: sqlite); PostgreSQL at \$BENCH_POSTGRES_URL
                           (default $PG_ADMIN_URL), a fresh database per run; both: the
                           whole run on SQLite, then on PostgreSQL, with each workload's
                           PostgreSQL/SQLite ratio of req/s and CPU per request
  --duration S             seconds per measured workload (default $DURATION)
  --warmup S               seconds of warm-up before each (default $WARMUP)
  --connections N          wrk connections (default $CONNECTIONS)
  --users N                seeded users (default $USERS)
  --sessions-per-user K    sessions per seeded user (default $SESSIONS_PER_USER)
  --issue-users N          W7 opens sessions for this many users, in turn (default $ISSUE_USERS)
  --audit-events M         audit events (default $AUDIT_EVENTS)
  --no-scaling             skip the 10 000-event scaling check
  --port P                 server port on 127.0.0.1 (default $PORT)
  --out DIR                keep results here (default: a new directory under bench/results/)
  --keep                   keep the databases afterwards
  --no-vacuum              PostgreSQL: skip VACUUM (ANALYZE) after seeding
  --baseline               also build and run the baseline server (\$BASELINE_DIR, default
                           ../shared/baseline/raw-axum) with the same wrk settings, seeded
                           with the same sizes, and print each comparable workload's ratio
                           to it (W1: /sessions, W2: DELETE /sessions/{id}, W4 and W6: /whoami)
  --pg-tls                 PostgreSQL: connect as the driver does by default (sslmode=prefer:
                           TLS when the cluster offers it) instead of without TLS
  --webhook                W2 again with one webhook endpoint (every event type) at a local
                           receiver answering 204 (nginx; Python without it), then again
                           without, and the ratio
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --db) DB="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --users) USERS="$2"; shift 2 ;;
    --sessions-per-user) SESSIONS_PER_USER="$2"; shift 2 ;;
    --issue-users) ISSUE_USERS="$2"; shift 2 ;;
    --audit-events) AUDIT_EVENTS="$2"; shift 2 ;;
    --no-scaling) SCALING=0; shift ;;
    --port) PORT="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --no-vacuum) VACUUM=0; shift ;;
    --baseline) BASELINE=1; shift ;;
    --webhook) WEBHOOK=1; shift ;;
    --pg-tls) PG_PARAMS=""; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$DB" in sqlite|postgres|both) ;; *) echo "--db must be sqlite, postgres or both" >&2; exit 2 ;; esac

# ---------------------------------------------------------------- both
# The same options on each database, one after the other (never at once:
# they would share the cores), then each workload's ratio. Issue 20's
# targets compare PostgreSQL with SQLite in the same run.
if [ "$DB" = both ]; then
  BOTH_OUT="${OUT:-$ROOT/bench/results/both-$(date -u +%Y%m%dT%H%M%SZ)}"
  mkdir -p "$BOTH_OUT"
  rest=()
  set -- "${ARGS[@]+"${ARGS[@]}"}"
  while [ $# -gt 0 ]; do
    case "$1" in --db|--out) shift 2 ;; *) rest+=("$1"); shift ;; esac
  done
  for db in sqlite postgres; do
    "$0" --db "$db" --out "$BOTH_OUT/$db" "${rest[@]+"${rest[@]}"}" || exit 1
  done
  {
    printf '\n== PostgreSQL / SQLite, same run (req/s ratio; server CPU per request, us)\n'
    awk -F'\t' 'FNR == 1 { next }
      FILENAME ~ /sqlite/ { key = $2 "/" $3; sq[key] = $4; sc[key] = $8; if (!(key in seen)) { order[++n] = key; seen[key] = 1 } }
      FILENAME ~ /postgres/ { key = $2 "/" $3; pq[key] = $4; pc[key] = $8 }
      END { for (i = 1; i <= n; i++) { k = order[i]
        if (k in pq) printf "  %-36s %7s / %7s req/s  x%.2f   CPU/req %5s / %5s us\n", k, pq[k], sq[k], (sq[k] > 0 ? pq[k] / sq[k] : 0), pc[k], sc[k] } }' \
      "$BOTH_OUT/sqlite/results.tsv" "$BOTH_OUT/postgres/results.tsv"
  } | tee "$BOTH_OUT/ratios-postgres-sqlite.txt" >&2
  exit 0
fi

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- tools
need_apt() {
  if ! command -v "$1" >/dev/null 2>&1; then
    log "installing $2 (apt)"
    if [ "$(id -u)" -eq 0 ]; then
      apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null
    else
      sudo apt-get update -qq >/dev/null && sudo apt-get install -y -qq "$2" >/dev/null
    fi
  fi
  command -v "$1" >/dev/null 2>&1 || die "$1 is required"
}
need_apt wrk wrk
need_apt jq jq
need_apt curl curl
[ "$DB" = postgres ] && need_apt psql postgresql-client

# ---------------------------------------------------------------- build
# BENCH_BIN: a binary built before (e.g. the commit before a change, for
# a before/after comparison); otherwise this checkout, built in release.
if [ -n "${BENCH_BIN:-}" ]; then
  BIN="$BENCH_BIN"
  log "== binary: $BIN (BENCH_BIN; not built)"
else
  log "== building (release)"
  cargo build --release --locked --quiet
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/session-manager"
fi
[ -x "$BIN" ] || die "no binary at $BIN"
if [ "$BASELINE" -eq 1 ]; then
  # shared/ may be read-only: the baseline builds into our (ignored) target/.
  [ -f "$BASELINE_DIR/Cargo.toml" ] || die "no baseline at $BASELINE_DIR (set BASELINE_DIR)"
  log "== building the baseline (release): $BASELINE_DIR"
  cargo build --release --locked --quiet --manifest-path "$BASELINE_DIR/Cargo.toml" \
    --target-dir "$ROOT/target/baseline"
  RAW="$ROOT/target/baseline/release/raw-axum"
  [ -x "$RAW" ] || die "no baseline binary at $RAW"
fi

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-$ROOT/bench/results/$DB-$STAMP}"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
RESULTS="$OUT/results.tsv"
printf 'db\tscale\tworkload\treq_per_s\tp50_ms\tp99_ms\tpeak_rss_mb\tserver_cpu_us_per_req\tnote\n' >"$RESULTS"

SERVER_PID=""
PG_DBS=()
RECEIVER_PID=""
cleanup() {
  stop_server
  [ -z "$RECEIVER_PID" ] || kill "$RECEIVER_PID" 2>/dev/null || true
  if [ "$KEEP" -eq 0 ]; then
    for name in "${PG_DBS[@]+"${PG_DBS[@]}"}"; do
      psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
  else
    log "kept: $WORK ${PG_DBS[*]+"${PG_DBS[*]}"}"
  fi
}
trap cleanup EXIT

# A fresh, empty database; sets FRESH_URL. (Not called in a subshell, so
# PG_DBS keeps the name for the clean-up.)
fresh_database() {
  local label="$1"
  if [ "$DB" = sqlite ]; then
    FRESH_URL="sqlite://$WORK/$label.db?mode=rwc"
  else
    local name="sm_bench_${label}_$(date +%s)_$$"
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $name" >/dev/null
    PG_DBS+=("$name")
    FRESH_URL="${PG_ADMIN_URL%/*}/$name$PG_PARAMS"
  fi
}

# ---------------------------------------------------------------- server
start_server() {
  local url="$1" label="$2"
  # No session cap (the default, said here so an inherited setting does
  # not refuse W5's, W7's and W8's sessions). The sign-in throttle's
  # limits are raised: wrk drops the requests in flight when a run ends,
  # and a sign-in dropped after its reservation counts as a failure, so
  # after a few runs the one sign-in account would be refused (the
  # throttle still does all its work).
  DATABASE_URL="$url" BIND="127.0.0.1:$PORT" RUST_LOG="${RUST_LOG:-info}" MAX_SESSIONS_PER_USER=0 \
    SIGNIN_MAX_FAILURES_PER_ACCOUNT=1000000 SIGNIN_MAX_FAILURES_PER_IP=1000000 \
    "$BIN" serve >"$OUT/server-$label.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited; see $OUT/server-$label.log"
    sleep 0.1
  done
  die "the server did not answer /healthz"
}

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}

# Peak resident memory of the server (VmHWM), in MB; reset_peak starts a
# new peak (Linux: writing 5 to clear_refs resets VmHWM).
peak_rss_mb() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }
reset_peak() { echo 5 >"/proc/$SERVER_PID/clear_refs" 2>/dev/null || true; }

# CPU accounting around a measured run, so figures taken on a busy machine
# say so: the server's CPU time (and per request), wrk's, and what other
# processes took, as shares of the machine's cores.
HZ="$(getconf CLK_TCK)"
NCPU="$(nproc)"
OTHER_LABEL="other processes"
[ "$DB" = postgres ] && OTHER_LABEL="PostgreSQL and other processes"
machine_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
server_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }
# `times` must run in this shell (not a subshell) to see its children's time.
children_seconds() { awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } print t }' "$1"; }
cpu_begin() {
  times >"$WORK/times0"
  CPU_T0="$(date +%s.%N)"; CPU_BUSY0="$(machine_busy)"; CPU_SRV0="$(server_ticks)"; CPU_KIDS0="$(children_seconds "$WORK/times0")"
  CPU_LOAD="$(cut -d' ' -f1 /proc/loadavg)"
}
# cpu_end REQUESTS: sets CPU_NOTE and CPU_US (server CPU microseconds per request)
cpu_end() {
  local t1 busy1 srv1 kids1
  times >"$WORK/times1"
  t1="$(date +%s.%N)"; busy1="$(machine_busy)"; srv1="$(server_ticks)"; kids1="$(children_seconds "$WORK/times1")"
  read -r CPU_US CPU_NOTE < <(awk -v t0="$CPU_T0" -v t1="$t1" -v b0="$CPU_BUSY0" -v b1="$busy1" \
    -v s0="$CPU_SRV0" -v s1="$srv1" -v k0="$CPU_KIDS0" -v k1="$kids1" -v hz="$HZ" -v n="$NCPU" \
    -v req="$1" -v loadavg="$CPU_LOAD" -v other_label="$OTHER_LABEL" 'BEGIN {
      wall = (t1 - t0) * n; server = (s1 - s0) / hz; wrk = k1 - k0; busy = (b1 - b0) / hz
      other = busy - server - wrk; if (other < 0) other = 0
      printf "%s cpu: server %.0f%%, wrk %.0f%%, %s %.0f%% of %d cores (load %s)\n",
        (req > 0 ? sprintf("%.0f", server * 1e6 / req) : "-"), 100 * server / wall, 100 * wrk / wall, other_label, 100 * other / wall, n, loadavg }')
}

# ---------------------------------------------------------------- requests
GRAPHQL="http://127.0.0.1:$PORT/graphql"

# A wrk script that POSTs one GraphQL body with a token. With CHECK=1 it
# also counts responses that are not HTTP 200 or carry GraphQL errors (used
# in warm-up only: reading bodies slows wrk down).
write_script() {
  local file="$1" token="$2" body="$3" check="${4:-0}"
  local auth=""
  [ -n "$token" ] && auth="wrk.headers[\"Authorization\"] = \"Bearer $token\""
  cat >"$file" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"
$auth
wrk.body = [==[$body]==]
LUA
  [ "$check" = 1 ] && lua_check "status == 200 and not string.find(body, '\"errors\"', 1, true)" >>"$file"
  return 0
}

# The response check of a warm-up script: counts the responses for which
# the Lua expression OK (over status, headers, body) is false, and prints
# the count and a sample.
lua_check() {
  cat <<LUA
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0; sample = "" end
function response(status, headers, body)
  if not ($1) then
    bad = bad + 1
    if sample == "" then sample = status .. " " .. string.sub(body or "", 1, 300) end
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("bad")
    local s = t:get("sample")
    if s ~= "" then io.write("SAMPLE " .. s .. "\n") end
  end
  io.write("BAD_RESPONSES " .. total .. "\n")
end
LUA
}

# A wrk script for a request without a body (W6 and the baseline's
# GETs), with a token; with CHECK=1 it checks each response with the Lua
# expression OK (see lua_check).
write_plain_script() {
  local file="$1" method="$2" token="$3" check="${4:-0}" ok="${5:-status == 200}"
  cat >"$file" <<LUA
wrk.method = "$method"
wrk.headers["Authorization"] = "Bearer $token"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"
LUA
  [ "$check" = 1 ] && lua_check "$ok" >>"$file"
  return 0
}

# W2: each request revokes another session. Thread i of n takes ids i,
# i+n, i+2n, … from the file; warm-up and measured runs use disjoint
# files.
write_revoke_script() {
  local file="$1" token="$2" ids="$3"
  cat >"$file" <<LUA
local ids = {}
for line in io.lines("$ids") do ids[#ids + 1] = line end
local counter = 0
function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
end
function init(args)
  n = 0
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"
function request()
  local i = index + 1 + n * $THREADS
  n = n + 1
  local id = ids[((i - 1) % #ids) + 1]
  return wrk.format(nil, nil, nil,
    '{"query":"mutation(\$id: UUID!) { revokeSession(id: \$id) { id revokedAt isActive } }","variables":{"id":"' .. id .. '"}}')
end
LUA
}

# Runs wrk; appends "name req/s p50 p99" to $OUT/<name>.wrk.
# usage: run_wrk NAME SECONDS CONNECTIONS SCRIPT [THREADS]
run_wrk() {
  local name="$1" secs="$2" conns="$3" script="$4" threads="${5:-$THREADS}"
  # WRK_URL: another endpoint than /graphql (W6, the baseline).
  wrk -t "$threads" -c "$conns" -d "${secs}s" --timeout 10s --latency -s "$script" "${WRK_URL:-$GRAPHQL}" \
    >"$OUT/$name.wrk" 2>&1 || die "wrk failed: $(cat "$OUT/$name.wrk")"
}

# Milliseconds from wrk's "1.23ms" / "456.00us" / "1.01s".
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
    else printf "nan" }'
}
wrk_rps() { awk '/^Requests\/sec/ { printf "%.0f", $2 }' "$1"; }
wrk_pct() { to_ms "$(awk -v p="$2%" '$1 == p { print $2; exit }' "$1")"; }
wrk_requests() { awk '/requests in/ { print $1; exit }' "$1"; }
wrk_errors() {
  awk '/Non-2xx|Socket errors/ { print; found = 1 } END { if (!found) print "none" }' "$1" | tr '\n' ' '
}

SCALE="full"
# One workload: warm-up (with response checks), peak reset, measured run.
# usage: workload NAME BODY TOKEN [NOTE]
workload() {
  local name="$1" body="$2" token="$3" note="${4:-}"
  write_script "$WORK/$name-check.lua" "$token" "$body" 1
  write_script "$WORK/$name.lua" "$token" "$body" 0
  run_wrk "$name-warmup" "$WARMUP" "$CONNECTIONS" "$WORK/$name-check.lua"
  local bad
  bad="$(awk '/^BAD_RESPONSES/ { print $2 }' "$OUT/$name-warmup.wrk")"
  [ "${bad:-1}" = 0 ] || die "$name: $bad bad responses in warm-up: $(grep SAMPLE "$OUT/$name-warmup.wrk" | head -1)"
  [ -z "${PRE_HOOK:-}" ] || "$PRE_HOOK" "$name"
  reset_peak
  cpu_begin
  run_wrk "$name" "$DURATION" "$CONNECTIONS" "$WORK/$name.lua"
  cpu_end "$(wrk_requests "$OUT/$name.wrk")"
  [ -z "${POST_HOOK:-}" ] || "$POST_HOOK" "$name"
  record "$name" "$OUT/$name.wrk" "$note"
}

# The same for a request without a body, to URL.
# usage: plain_workload NAME METHOD URL TOKEN OK [NOTE]
plain_workload() {
  local name="$1" method="$2" url="$3" token="$4" ok="$5" note="${6:-}"
  write_plain_script "$WORK/$name-check.lua" "$method" "$token" 1 "$ok"
  write_plain_script "$WORK/$name.lua" "$method" "$token" 0
  WRK_URL="$url" run_wrk "$name-warmup" "$WARMUP" "$CONNECTIONS" "$WORK/$name-check.lua"
  local bad
  bad="$(awk '/^BAD_RESPONSES/ { print $2 }' "$OUT/$name-warmup.wrk")"
  [ "${bad:-1}" = 0 ] || die "$name: $bad bad responses in warm-up: $(grep SAMPLE "$OUT/$name-warmup.wrk" | head -1)"
  [ -z "${PRE_HOOK:-}" ] || "$PRE_HOOK" "$name"
  reset_peak
  cpu_begin
  WRK_URL="$url" run_wrk "$name" "$DURATION" "$CONNECTIONS" "$WORK/$name.lua"
  cpu_end "$(wrk_requests "$OUT/$name.wrk")"
  [ -z "${POST_HOOK:-}" ] || "$POST_HOOK" "$name"
  record "$name" "$OUT/$name.wrk" "$note"
}

record() {
  local name="$1" file="$2" note="${3:-}"
  local rps p50 p99 rss errors
  rps="$(wrk_rps "$file")"; p50="$(wrk_pct "$file" 50)"; p99="$(wrk_pct "$file" 99)"
  rss="$(peak_rss_mb)"; errors="$(wrk_errors "$file")"
  [ "$errors" = "none " ] || note="$note; wrk: $errors"
  note="$note; ${CPU_NOTE:-}"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$DB" "$SCALE" "$name" "$rps" "$p50" "$p99" "$rss" "${CPU_US:-}" "$note" >>"$RESULTS"
  printf '  %-24s %6s req/s  p50 %7s ms  p99 %8s ms  RSS %6s MB  %5s us CPU/req  %s\n' \
    "$name" "$rps" "$p50" "$p99" "$rss" "${CPU_US:-}" "$note" >&2
}

gql_body() {
  local vars="${2:-}"
  [ -n "$vars" ] || vars='{}'
  jq -cn --arg q "$1" --argjson v "$vars" '{query: $q, variables: $v}'
}

gql() { # gql TOKEN BODY -> response
  curl -fsS "$GRAPHQL" -H 'content-type: application/json' ${1:+-H "authorization: Bearer $1"} -d "$2"
}

# ---------------------------------------------------------------- write counters
# What the database wrote during a measured run. PostgreSQL: inserted,
# updated and deleted tuples of all tables (pg_stat_user_tables; a server
# backend flushes its counters within ~10 s of going idle, hence the
# wait). SQLite: the database and WAL files' sizes and modification times.
write_counters() {
  if [ "$DB" = postgres ]; then
    sleep 11
    psql "$URL" -Atqc "SELECT sum(n_tup_ins) || ' ins, ' || sum(n_tup_upd) || ' upd, ' || sum(n_tup_del) || ' del' FROM pg_stat_user_tables"
  else
    local file="${URL#sqlite://}"; file="${file%%\?*}"
    printf 'db %s B @%s, wal %s B @%s\n' "$(stat -c %s "$file")" "$(stat -c %.6Y "$file")" \
      "$(stat -c %s "$file-wal" 2>/dev/null || echo 0)" "$(stat -c %.6Y "$file-wal" 2>/dev/null || echo -)"
  fi
}
writes_before() { WRITES_BEFORE="$(write_counters)"; }
writes_after() { printf '%s\t%s\t%s\n' "$1" "$WRITES_BEFORE" "$(write_counters)" >>"$OUT/writes.tsv"; }

# ---------------------------------------------------------------- queries
Q_W1='query SettingsSessions { sessions { count activeCount sessions { id sessionToken device ipAddress userAgent createdAt lastActiveAt expires isCurrent isActive impersonationReason impersonator { name email } } } }'
Q_W3='query AuditPage($u: UUID!, $o: Int!) { sessionAudit(filter: { userId: $u }, limit: 50, offset: $o) { logs { id eventType status message createdAt actorId userId sessionId ipAddress userAgent metadata } pagination { total limit offset hasMore } } }'
Q_W3_AFTER='query AuditPage($u: UUID!, $a: String!) { sessionAudit(filter: { userId: $u }, limit: 50, after: $a) { logs { id eventType status message createdAt actorId userId sessionId ipAddress userAgent metadata } pagination { total limit offset hasMore nextCursor } } }'
Q_W3_ALL_AFTER='query AuditPage($a: String!) { sessionAudit(limit: 50, after: $a) { logs { id eventType status message createdAt actorId userId sessionId ipAddress userAgent metadata } pagination { total limit offset hasMore nextCursor } } }'
Q_W3_ALL='query AuditPage($o: Int!) { sessionAudit(limit: 50, offset: $o) { logs { id eventType status message createdAt actorId userId sessionId ipAddress userAgent metadata } pagination { total limit offset hasMore } } }'
Q_W4='query { viewer { user { id email name role } session { id expires } } }'
Q_SIGNIN='mutation SignIn($e: String!, $p: String!) { signIn(email: $e, password: $p) { token session { id } } }'

machine_header() {
  log "== session-manager load benchmark ($DB)"
  log "   machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/MemTotal/ { printf "%.0f GiB", $2/1048576 }' /proc/meminfo)"
  log "   NOTE: the $(nproc) cores are shared by the server, the database and the load generator (wrk, $THREADS threads)"
  log "   commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo ' (dirty)'), $(date -u '+%Y-%m-%d %H:%M UTC')"
  log "   load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (each row below says how much CPU other processes took during it)"
  log "   $CONNECTIONS connections, ${WARMUP}s warm-up, ${DURATION}s per workload; results in $OUT"
  if [ "$DB" = postgres ]; then
    log "   PostgreSQL connections: ${PG_PARAMS:-as the driver defaults (sslmode=prefer: TLS when offered)}"
  fi
}

seed_db() { # seed_db URL LABEL ARGS... -> writes $OUT/seed-LABEL.json
  local url="$1" label="$2"; shift 2
  local t0 t1
  t0=$(date +%s.%N)
  DATABASE_URL="$url" RUST_LOG=warn "$BIN" seed "$@" >"$OUT/seed-$label.json" 2>"$OUT/seed-$label.log" \
    || die "seed failed: $(cat "$OUT/seed-$label.log")"
  t1=$(date +%s.%N)
  SEED_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  log "   seeded in ${SEED_SECONDS}s: $(jq -r '"\(.users) users, \(.sessions) sessions, \(.auditEvents) audit events"' "$OUT/seed-$label.json")"
  sed 's/^/     /' "$OUT/seed-$label.log" >&2
  t0=$(date +%s.%N)
  DATABASE_URL="$url" RUST_LOG=warn "$BIN" audit verify >"$OUT/verify-$label.txt" 2>&1 \
    || die "audit verify failed: $(cat "$OUT/verify-$label.txt")"
  t1=$(date +%s.%N)
  log "   $(cat "$OUT/verify-$label.txt") ($(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s)"
  if [ "$DB" = postgres ] && [ "$VACUUM" -eq 1 ]; then
    # After a bulk load: statistics for the planner and a visibility map
    # for index-only scans. Autovacuum would do it too, at some moment
    # during the runs; doing it here keeps it out of them.
    t0=$(date +%s.%N)
    psql "$url" -qc "VACUUM (ANALYZE)" || die "VACUUM failed"
    t1=$(date +%s.%N)
    log "   VACUUM (ANALYZE) after the bulk load ($(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s)"
  fi
  # The bulk load leaves up to a gigabyte of dirty pages for the kernel
  # to write back; let that finish before measuring, not during W1.
  sync
  sleep 2
}

machine_header

# Sessions for W2: enough for ~3 000 revocations/s over warm-up and run.
REVOCABLE=$(( (WARMUP + DURATION + 5) * 3000 ))
# --webhook: sessions for two more W2 runs; the receiver is at 127.0.0.1.
if [ "$WEBHOOK" -eq 1 ]; then REVOCABLE=$(( REVOCABLE * 3 )); export WEBHOOK_ALLOW_PRIVATE=true; fi

# ================================================================ full scale
log "== seeding: $USERS users x $SESSIONS_PER_USER sessions, $AUDIT_EVENTS audit events, $REVOCABLE revocable"
fresh_database full
URL="$FRESH_URL"
seed_db "$URL" full --users "$USERS" --sessions-per-user "$SESSIONS_PER_USER" \
  --audit-events "$AUDIT_EVENTS" --revocable-sessions "$REVOCABLE" --bench-user-events "$BENCH_USER_EVENTS"
printf 'seed_seconds\t%s\t%s\t%s\t%s\n' "$DB" "$USERS" "$AUDIT_EVENTS" "$SEED_SECONDS" >"$OUT/seed-time.tsv"
SEED="$OUT/seed-full.json"
BENCH_TOKEN="$(jq -r '.bench.tokens[0]' "$SEED")"
BENCH_ID="$(jq -r '.bench.id' "$SEED")"
ADMIN_TOKEN="$(jq -r '.admin.tokens[0]' "$SEED")"
REVOKER_TOKEN="$(jq -r '.revoker.tokens[0]' "$SEED")"
SIGNIN_EMAIL="$(jq -r '.signInEmail' "$SEED")"
PASSWORD="$(jq -r '.password' "$SEED")"
BENCH_EVENTS="$(jq -r --arg n "$BENCH_USER_EVENTS" '[($n|tonumber), (.auditEvents / 2 | floor)] | min' "$SEED")"
DEEP=$(( BENCH_EVENTS > 50 ? BENCH_EVENTS - 50 : 0 ))
DEEP_ALL=$(( AUDIT_EVENTS / 2 ))

start_server "$URL" full
log "== workloads (server pid $SERVER_PID)"

# W1, with the write check around the measured run.
W1_BODY="$(gql_body "$Q_W1")"
[ "$(gql "$BENCH_TOKEN" "$W1_BODY" | jq '.data.sessions.count')" = 10 ] || die "W1: the bench user does not list 10 sessions"
PRE_HOOK=writes_before POST_HOOK=writes_after \
  workload W1_list_sessions "$W1_BODY" "$BENCH_TOKEN" "10 sessions, settings-page fields"
W1_P99="$(awk -F'\t' '$3 == "W1_list_sessions" { print $6 }' "$RESULTS")"

# W2: a different session per request.
jq -r '.revocableSessionIds[]' "$SEED" >"$WORK/ids.txt"
half=$(( $(wc -l <"$WORK/ids.txt") * WARMUP / (WARMUP + DURATION + 5) + 1 ))
head -n "$half" "$WORK/ids.txt" >"$WORK/ids-warmup.txt"
tail -n "+$(( half + 1 ))" "$WORK/ids.txt" >"$WORK/ids-run.txt"
write_revoke_script "$WORK/w2-warmup.lua" "$REVOKER_TOKEN" "$WORK/ids-warmup.txt"
write_revoke_script "$WORK/w2.lua" "$REVOKER_TOKEN" "$WORK/ids-run.txt"
REVOKER_ID="$(jq -r '.revoker.id' "$SEED")"
count_revocations() {
  gql "$ADMIN_TOKEN" "$(gql_body 'query($u: UUID!) { sessionAudit(filter: { userId: $u, eventType: "session.revoked" }, limit: 1) { pagination { total } } }' "{\"u\":\"$REVOKER_ID\"}")" \
    | jq '.data.sessionAudit.pagination.total'
}
run_wrk W2-warmup "$WARMUP" "$CONNECTIONS" "$WORK/w2-warmup.lua"
r0="$(count_revocations)"
reset_peak
cpu_begin
run_wrk W2_revoke_session "$DURATION" "$CONNECTIONS" "$WORK/w2.lua"
sent="$(wrk_requests "$OUT/W2_revoke_session.wrk")"
cpu_end "$sent"
r1="$(count_revocations)"
available="$(wc -l <"$WORK/ids-run.txt")"
note="each a different session; $((r1 - r0)) revocations audited for $sent requests"
[ "$sent" -le "$available" ] || note="$note (ids ran out: $available)"
record W2_revoke_session "$OUT/W2_revoke_session.wrk" "$note"

# W2 with one webhook endpoint attached (--webhook): delivery runs off the
# request path, so the rate should hold. An owner makes one endpoint for
# every event type at a trivial local receiver (204 at once); W2 runs with
# it on the session ids W2 left unused, then without it (the endpoint
# deleted) on others, so the with-run sits between two without-runs of
# the same process; the ratio is to their mean.
if [ "$WEBHOOK" -eq 1 ]; then
  log "== W2 with one webhook endpoint (uptime: $(uptime))"
  # The receiver: nginx answering 204 (see bench/receiver.sh); Python is
  # the fallback without nginx.
  NGINX="$(find_nginx)"
  if [ -n "$NGINX" ]; then
    start_nginx_receiver "$NGINX" "$WORK/receiver" $(( PORT + 2 )) "$OUT/receiver.log"
    log "   receiver: nginx ($NGINX), return 204"
  else
    cat >"$WORK/receiver.py" <<'PY'
import http.server, sys
class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
PY
    # Bounded, so that it ends even when the script stops early.
    timeout 900 python3 "$WORK/receiver.py" $(( PORT + 2 )) >"$OUT/receiver.log" 2>&1 &
    RECEIVER_PID=$!
    log "   receiver: Python http.server (no nginx here), 204"
  fi
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$(( PORT + 2 ))") 2>/dev/null && break
    sleep 0.05
  done
  kill -0 "$RECEIVER_PID" 2>/dev/null || die "W2 webhook: the receiver did not start: $(cat "$OUT/receiver.log")"
  printf '%s' "$PASSWORD" | DATABASE_URL="$URL" RUST_LOG=warn "$BIN" user add --email bench-owner@example.com \
    --name "Bench owner" --role owner --password-stdin >"$OUT/owner.log" 2>&1 || die "owner: $(cat "$OUT/owner.log")"
  OWNER_TOKEN="$(gql "" "$(gql_body "$Q_SIGNIN" "$(jq -cn --arg p "$PASSWORD" '{e: "bench-owner@example.com", p: $p}')")" | jq -r '.data.signIn.token')"
  sleep 0.5
  HOOK_ID="$(gql "$OWNER_TOKEN" "$(gql_body "mutation { createWebhookEndpoint(url: \"http://127.0.0.1:$(( PORT + 2 ))/hook\", description: \"bench\") { endpoint { id } } }")" \
    | jq -r '.data.createWebhookEndpoint.endpoint.id')"
  [ -n "$HOOK_ID" ] && [ "$HOOK_ID" != null ] || die "W2 webhook: the endpoint was not made"
  hook_state() { # -> "cursorSeq lag failures"
    gql "$OWNER_TOKEN" "$(gql_body '{ webhookEndpoints { id cursorSeq lag failures } }')" \
      | jq -r --arg id "$HOOK_ID" '.data.webhookEndpoints[] | select(.id == $id) | "\(.cursorSeq) \(.lag) \(.failures)"'
  }
  # The ids W2 left: two halves, each split into warm-up and run as W2's.
  tail -n "+$(( sent + 1 ))" "$WORK/ids-run.txt" >"$WORK/ids-left.txt"
  left_half=$(( $(wc -l <"$WORK/ids-left.txt") / 2 ))
  w2_again() { # w2_again NAME FIRST_LINE NOTE
    local name="$1" first="$2" note="$3" warm
    sed -n "${first},$(( first + left_half - 1 ))p" "$WORK/ids-left.txt" >"$WORK/$name-ids.txt"
    warm=$(( left_half * WARMUP / (WARMUP + DURATION + 5) + 1 ))
    head -n "$warm" "$WORK/$name-ids.txt" >"$WORK/$name-ids-warmup.txt"
    tail -n "+$(( warm + 1 ))" "$WORK/$name-ids.txt" >"$WORK/$name-ids-run.txt"
    write_revoke_script "$WORK/$name-warmup.lua" "$REVOKER_TOKEN" "$WORK/$name-ids-warmup.txt"
    write_revoke_script "$WORK/$name.lua" "$REVOKER_TOKEN" "$WORK/$name-ids-run.txt"
    run_wrk "$name-warmup" "$WARMUP" "$CONNECTIONS" "$WORK/$name-warmup.lua"
    [ -z "${PRE_HOOK:-}" ] || "$PRE_HOOK" "$name"
    reset_peak
    cpu_begin
    run_wrk "$name" "$DURATION" "$CONNECTIONS" "$WORK/$name.lua"
    cpu_end "$(wrk_requests "$OUT/$name.wrk")"
    [ -z "${POST_HOOK:-}" ] || "$POST_HOOK" "$name"
    [ -z "${HOOK_NOTE:-}" ] || note="$HOOK_NOTE"
    HOOK_NOTE=""
    [ "$(wrk_requests "$OUT/$name.wrk")" -le "$(wc -l <"$WORK/$name-ids-run.txt")" ] || note="$note (ids ran out)"
    record "$name" "$OUT/$name.wrk" "$note"
  }
  hook_before() { read -r HOOK_C0 _ _ < <(hook_state); }
  hook_after() {
    local c1 lag fails t0 drained
    read -r c1 lag fails < <(hook_state)
    t0="$(date +%s.%N)"
    for _ in $(seq 1 600); do
      [ "$(hook_state | cut -d' ' -f2)" = 0 ] && break
      sleep 0.2
    done
    drained="$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
    HOOK_NOTE="one webhook endpoint (every type): $(( c1 - HOOK_C0 )) events delivered during the run, lag at its end $lag, drained ${drained}s later (lag now $(hook_state | cut -d' ' -f2)), $fails failures"
  }
  PRE_HOOK=hook_before POST_HOOK=hook_after w2_again W2_revoke_session_webhook 1 "with a webhook endpoint"
  gql "$OWNER_TOKEN" "$(gql_body "mutation { deleteWebhookEndpoint(id: \"$HOOK_ID\") }")" >/dev/null
  kill "$RECEIVER_PID" 2>/dev/null || true
  w2_again W2_revoke_session_after $(( left_half + 1 )) "no webhook endpoint (deleted), after the run with one"
  awk -F'\t' '
    $2 == "full" && $3 == "W2_revoke_session" { a = $4; ca = $8 }
    $2 == "full" && $3 == "W2_revoke_session_webhook" { w = $4; cw = $8 }
    $2 == "full" && $3 == "W2_revoke_session_after" { b = $4; cb = $8 }
    END { printf "  W2 with one webhook endpoint / without (mean of before and after): x%.2f req/s (%s / %s, %s), server CPU/req x%.2f (%s / %s, %s us)\n",
      w / ((a + b) / 2), w, a, b, cw / ((ca + cb) / 2), cw, ca, cb }' "$RESULTS" | tee "$OUT/webhook.txt" >&2
  log "   uptime after: $(uptime)"
fi

# W3: the admin's audit page, filtered by user.
workload W3_audit_user_offset0 "$(gql_body "$Q_W3" "{\"u\":\"$BENCH_ID\",\"o\":0}")" "$ADMIN_TOKEN" \
  "user with $BENCH_EVENTS events, limit 50"
workload W3_audit_user_deep "$(gql_body "$Q_W3" "{\"u\":\"$BENCH_ID\",\"o\":$DEEP}")" "$ADMIN_TOKEN" \
  "offset $DEEP"
workload W3x_audit_all_deep "$(gql_body "$Q_W3_ALL" "{\"o\":$DEEP_ALL}")" "$ADMIN_TOKEN" \
  "unfiltered, offset $DEEP_ALL (extra)"
# The same deep pages by keyset paging: the cursor of the page just before.
cursor_before() { # cursor_before BODY -> nextCursor of that page
  gql "$ADMIN_TOKEN" "$1" | jq -r '.data.sessionAudit.pagination.nextCursor'
}
DEEP_CURSOR="$(cursor_before "$(gql_body "${Q_W3/hasMore/hasMore nextCursor}" "{\"u\":\"$BENCH_ID\",\"o\":$(( DEEP > 50 ? DEEP - 50 : 0 ))}")")"
DEEP_ALL_CURSOR="$(cursor_before "$(gql_body "${Q_W3_ALL/hasMore/hasMore nextCursor}" "{\"o\":$(( DEEP_ALL - 50 ))}")")"
[ -n "$DEEP_CURSOR" ] && [ "$DEEP_CURSOR" != null ] || die "no keyset cursor for W3 at offset $DEEP"
workload W3_audit_user_deep_keyset "$(gql_body "$Q_W3_AFTER" "{\"u\":\"$BENCH_ID\",\"a\":\"$DEEP_CURSOR\"}")" "$ADMIN_TOKEN" \
  "the page at offset $DEEP by cursor (after:)"
workload W3x_audit_all_deep_keyset "$(gql_body "$Q_W3_ALL_AFTER" "{\"a\":\"$DEEP_ALL_CURSOR\"}")" "$ADMIN_TOKEN" \
  "unfiltered, the page at offset $DEEP_ALL by cursor (extra)"

# W4, with the write check.
W4_BODY="$(gql_body "$Q_W4")"
PRE_HOOK=writes_before POST_HOOK=writes_after \
  workload W4_viewer "$W4_BODY" "$BENCH_TOKEN" "token check"

# W6: the gateway's check, with the write check. Checked first: 200 and
# the caller's headers.
AUTH_CHECK="http://127.0.0.1:$PORT/auth/check"
W6_HEADERS="$(curl -fsS -o /dev/null -D - "$AUTH_CHECK" -H "authorization: Bearer $BENCH_TOKEN" | tr -d '\r')" \
  || die "W6: /auth/check does not answer 200"
grep -qix "x-auth-user-id: $BENCH_ID" <<<"$W6_HEADERS" || die "W6: /auth/check does not name the bench user: $W6_HEADERS"
PRE_HOOK=writes_before POST_HOOK=writes_after \
  plain_workload W6_auth_check GET "$AUTH_CHECK" "$BENCH_TOKEN" \
  'status == 200 and headers["x-auth-user-id"] ~= nil and headers["x-auth-role"] ~= nil' \
  "GET /auth/check, bearer token"

# W5: W1 while sign-ins run alongside.
SIGNIN_BODY="$(gql_body "$Q_SIGNIN" "$(jq -cn --arg e "$SIGNIN_EMAIL" --arg p "$PASSWORD" '{e: $e, p: $p}')")"
write_script "$WORK/signin.lua" "" "$SIGNIN_BODY" 1
write_script "$WORK/w5.lua" "$BENCH_TOKEN" "$W1_BODY" 0
run_wrk W5-warmup "$WARMUP" "$CONNECTIONS" "$WORK/w5.lua"
reset_peak
cpu_begin
run_wrk W5_signins "$DURATION" "$SIGNIN_CONNECTIONS" "$WORK/signin.lua" 1 &
signin_pid=$!
run_wrk W5_list_during_signins "$DURATION" "$CONNECTIONS" "$WORK/w5.lua"
wait "$signin_pid"
cpu_end 0
bad="$(awk '/^BAD_RESPONSES/ { print $2 }' "$OUT/W5_signins.wrk")"
W5_P99="$(wrk_pct "$OUT/W5_list_during_signins.wrk" 99)"
record W5_list_during_signins "$OUT/W5_list_during_signins.wrk" \
  "p99 x$(awk -v a="$W5_P99" -v b="$W1_P99" 'BEGIN { printf "%.1f", a / b }') of W1 alone"
record W5_signins "$OUT/W5_signins.wrk" "$SIGNIN_CONNECTIONS connections, alongside W5 (bad responses: ${bad:-?})"

# W7: a trusted backend opens sessions with an API key (issueSession),
# each request for the next of ISSUE_USERS users, so no user collects all
# the sessions. The key is made on the command line, as an operator would.
API_KEY="$(DATABASE_URL="$URL" RUST_LOG=warn "$BIN" api-key create --name bench --scope sessions:issue 2>"$OUT/api-key.log")" \
  || die "W7: api-key create failed: $(cat "$OUT/api-key.log")"
: >"$WORK/issue-users.txt"
for (( offset = 0; offset < ISSUE_USERS; offset += 100 )); do
  # Users only: admins and owners are never issued a session.
  gql "$ADMIN_TOKEN" "$(gql_body 'query($o: Int!) { users(limit: 100, offset: $o) { users { id role } } }' "{\"o\":$offset}")" \
    | jq -r '.data.users.users[] | select(.role == "USER") | .id' >>"$WORK/issue-users.txt"
done
head -n "$ISSUE_USERS" "$WORK/issue-users.txt" >"$WORK/issue-users-n.txt"
ISSUE_N="$(wc -l <"$WORK/issue-users-n.txt")"
[ "$ISSUE_N" -gt 0 ] || die "W7: no users listed"
write_issue_script() { # FILE CHECK: thread i of n takes users i, i+n, …
  # With CHECK=1, as lua_check: counts responses that are not 200 or carry
  # errors (its setup also keeps each thread).
  cat >"$1" <<LUA
local ids = {}
for line in io.lines("$WORK/issue-users-n.txt") do ids[#ids + 1] = line end
local counter = 0
local threads = {}
function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  n = 0; bad = 0; sample = ""
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $API_KEY"
wrk.headers["User-Agent"] = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"
function request()
  local i = index + 1 + n * $THREADS
  n = n + 1
  local id = ids[((i - 1) % #ids) + 1]
  return wrk.format(nil, nil, nil,
    '{"query":"mutation(\$u: UUID!) { issueSession(user: { id: \$u }) { token session { id } } }","variables":{"u":"' .. id .. '"}}')
end
LUA
  [ "$2" = 1 ] && cat >>"$1" <<'LUA'
function response(status, headers, body)
  if not (status == 200 and not string.find(body, '"errors"', 1, true)) then
    bad = bad + 1
    if sample == "" then sample = status .. " " .. string.sub(body or "", 1, 300) end
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("bad")
    local s = t:get("sample")
    if s ~= "" then io.write("SAMPLE " .. s .. "\n") end
  end
  io.write("BAD_RESPONSES " .. total .. "\n")
end
LUA
  return 0
}
write_issue_script "$WORK/w7-check.lua" 1
write_issue_script "$WORK/w7.lua" 0
run_wrk W7-warmup "$WARMUP" "$CONNECTIONS" "$WORK/w7-check.lua"
bad="$(awk '/^BAD_RESPONSES/ { print $2 }' "$OUT/W7-warmup.wrk")"
[ "${bad:-1}" = 0 ] || die "W7: $bad bad responses in warm-up: $(grep SAMPLE "$OUT/W7-warmup.wrk" | head -1)"
reset_peak
cpu_begin
run_wrk W7_issue_session "$DURATION" "$CONNECTIONS" "$WORK/w7.lua"
cpu_end "$(wrk_requests "$OUT/W7_issue_session.wrk")"
record W7_issue_session "$OUT/W7_issue_session.wrk" "API key (sessions:issue), $ISSUE_N users in turn"

# W8: sign-ins alone (password hashing bounds them: a few connections
# suffice), each a new session of the sign-in user.
W8_CONNECTIONS=$(( SIGNIN_CONNECTIONS * 2 ))
run_wrk W8-warmup "$WARMUP" "$W8_CONNECTIONS" "$WORK/signin.lua" 1
bad="$(awk '/^BAD_RESPONSES/ { print $2 }' "$OUT/W8-warmup.wrk")"
[ "${bad:-1}" = 0 ] || die "W8: $bad bad responses in warm-up: $(grep SAMPLE "$OUT/W8-warmup.wrk" | head -1)"
write_script "$WORK/w8.lua" "" "$SIGNIN_BODY" 0
reset_peak
cpu_begin
run_wrk W8_sign_in "$DURATION" "$W8_CONNECTIONS" "$WORK/w8.lua" 1
cpu_end "$(wrk_requests "$OUT/W8_sign_in.wrk")"
record W8_sign_in "$OUT/W8_sign_in.wrk" "signIn alone, $W8_CONNECTIONS connections"

PEAK_TOTAL="$(peak_rss_mb)"
stop_server
log "   server peak RSS over all workloads: see per-workload column (VmHWM reset before each)"

# ================================================================ baseline
# The raw axum + sqlx server (SQLite, no GraphQL, no ORM, no audit) seeded
# with the same sizes, driven with the same wrk settings, in this run.
if [ "$BASELINE" -eq 1 ]; then
  SCALE="baseline"
  BASELINE_PORT=$(( PORT + 1 ))
  RAW_DIR="$WORK/baseline"
  mkdir -p "$RAW_DIR"
  # The baseline deletes faster than W2 revokes (no audit, no chain,
  # synchronous=NORMAL): its pool is sized for 10 000 deletions a second,
  # so the warm-up's share never runs into the measured run's.
  RAW_REVOCABLE=$(( (WARMUP + DURATION + 5) * 10000 ))
  log "== baseline: raw-axum seeded with $USERS users x $SESSIONS_PER_USER sessions, $RAW_REVOCABLE revocable"
  (cd "$RAW_DIR" && DB_PATH=raw.db N_USERS="$USERS" SESSIONS_PER_USER="$SESSIONS_PER_USER" "$RAW" seed \
    && DB_PATH=raw.db "$RAW" add-pool "$RAW_REVOCABLE") >"$OUT/seed-baseline.log" 2>&1 \
    || die "baseline seed failed: $(tail -5 "$OUT/seed-baseline.log")"
  RAW_TOKEN="$(cat "$RAW_DIR/bench.token")"
  RAW_REVOKER="$(cat "$RAW_DIR/revoker.token")"
  sync
  (cd "$RAW_DIR" && DB_PATH=raw.db PORT="$BASELINE_PORT" exec "$RAW" serve) >"$OUT/server-baseline.log" 2>&1 &
  SERVER_PID=$!
  RAW_URL="http://127.0.0.1:$BASELINE_PORT"
  for _ in $(seq 1 100); do
    curl -fsS "$RAW_URL/whoami" -H "authorization: Bearer $RAW_TOKEN" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "the baseline exited; see $OUT/server-baseline.log"
    sleep 0.1
  done
  [ "$(curl -fsS "$RAW_URL/sessions" -H "authorization: Bearer $RAW_TOKEN" | jq 'length')" = 10 ] \
    || die "baseline: the bench user does not list 10 sessions"
  log "== baseline workloads (pid $SERVER_PID)"
  plain_workload B_sessions GET "$RAW_URL/sessions" "$RAW_TOKEN" 'status == 200' "raw-axum GET /sessions (vs W1)"
  # DELETE: a different session per request, disjoint for warm-up and run,
  # as in W2.
  write_raw_delete() { # FILE FIRST: thread i of n takes FIRST+i, FIRST+i+n, …
    cat >"$1" <<LUA
local counter = 0
function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
end
function init(args) n = 0 end
wrk.method = "DELETE"
wrk.headers["Authorization"] = "Bearer $RAW_REVOKER"
function request()
  local i = $2 + index + n * $THREADS
  n = n + 1
  return wrk.format(nil, string.format("/sessions/rv%030d", i % $RAW_REVOCABLE))
end
LUA
  }
  first_run=$(( RAW_REVOCABLE * WARMUP / (WARMUP + DURATION + 5) + 1 ))
  write_raw_delete "$WORK/b-delete-warmup.lua" 0
  write_raw_delete "$WORK/b-delete.lua" "$first_run"
  WRK_URL="$RAW_URL" run_wrk B_delete-warmup "$WARMUP" "$CONNECTIONS" "$WORK/b-delete-warmup.lua"
  reset_peak
  cpu_begin
  WRK_URL="$RAW_URL" run_wrk B_delete "$DURATION" "$CONNECTIONS" "$WORK/b-delete.lua"
  cpu_end "$(wrk_requests "$OUT/B_delete.wrk")"
  record B_delete "$OUT/B_delete.wrk" "raw-axum DELETE /sessions/{id}, each a different session (vs W2)"
  plain_workload B_whoami GET "$RAW_URL/whoami" "$RAW_TOKEN" 'status == 200' "raw-axum GET /whoami (vs W4, W6)"
  stop_server
fi

# ================================================================ scaling check
if [ "$SCALING" -eq 1 ]; then
  SCALE="small"
  log "== scaling check: $SMALL_USERS users x $SESSIONS_PER_USER sessions, $SMALL_AUDIT_EVENTS audit events"
  fresh_database small
  SMALL_URL="$FRESH_URL"
  seed_db "$SMALL_URL" small --users "$SMALL_USERS" --sessions-per-user "$SESSIONS_PER_USER" \
    --audit-events "$SMALL_AUDIT_EVENTS" --bench-user-events "$BENCH_USER_EVENTS"
  SMALL_SEED="$OUT/seed-small.json"
  start_server "$SMALL_URL" small
  SMALL_EVENTS="$(jq -r --arg n "$BENCH_USER_EVENTS" '[($n|tonumber), (.auditEvents / 2 | floor)] | min' "$SMALL_SEED")"
  workload W3_audit_user_offset0 "$(gql_body "$Q_W3" "{\"u\":\"$(jq -r .bench.id "$SMALL_SEED")\",\"o\":0}")" \
    "$(jq -r '.admin.tokens[0]' "$SMALL_SEED")" "user with $SMALL_EVENTS events, limit 50"
  workload W4_viewer "$W4_BODY" "$(jq -r '.bench.tokens[0]' "$SMALL_SEED")" "token check"
  stop_server
fi

# ================================================================ report
log ""
log "== results ($DB; $(nproc) cores shared with the load generator)"
column -t -s $'\t' "$RESULTS" >&2
if [ "$SCALING" -eq 1 ]; then
  log ""
  log "== scaling: req/s and p50 at $SMALL_AUDIT_EVENTS vs $AUDIT_EVENTS audit events (ratio full/small; 1.0 = flat; CPU/req is the least disturbed by other load)"
  for w in W3_audit_user_offset0 W4_viewer; do
    awk -F'\t' -v w="$w" '
      $3 == w && $2 == "small" { rs = $4; ps = $5; cs = $8 }
      $3 == w && $2 == "full" { rf = $4; pf = $5; cf = $8 }
      END { printf "  %-22s req/s %s -> %s (x%.2f)  p50 %s -> %s ms (x%.2f)  server CPU/req %s -> %s us (x%.2f)\n",
        w, rs, rf, rf / rs, ps, pf, pf / ps, cs, cf, cf / cs }' "$RESULTS" >&2
  done
fi
if [ "$BASELINE" -eq 1 ]; then
  log ""
  log "== ratio to the baseline (req/s of session-manager on $DB / raw-axum on SQLite, same run and wrk settings; 1.0 = as fast)"
  for pair in W1_list_sessions:B_sessions W2_revoke_session:B_delete W4_viewer:B_whoami W6_auth_check:B_whoami; do
    awk -F'\t' -v w="${pair%%:*}" -v b="${pair##*:}" '
      $2 == "full" && $3 == w { rw = $4; pw = $5 }
      $2 == "baseline" && $3 == b { rb = $4; pb = $5 }
      END { printf "  %-20s / %-11s x%.2f  (%s / %s req/s; p50 %s / %s ms)\n", w, b, (rb > 0 ? rw / rb : 0), rw, rb, pw, pb }' "$RESULTS"
  done | tee "$OUT/ratios.txt" >&2
fi
log ""
log "== writes during W1, W4 and W6 (before -> after)"
if [ "$DB" = postgres ]; then
  log "   pg_stat_user_tables: inserted updated deleted tuples"
else
  log "   SQLite: db size, db mtime, WAL size, WAL mtime"
fi
awk -F'\t' '{ printf "  %s: %s -> %s\n", $1, $2, $3 }' "$OUT/writes.tsv" >&2
log "   (one update per session per ACTIVITY_WRITE_INTERVAL, 60s by default, is expected: the throttled last-activity write)"
log "   overall server peak RSS (last phase): ${PEAK_TOTAL} MB"
