#!/usr/bin/env bash
# A short, targeted run of W2 (revoke one session over GraphQL, each
# request a different session) and optionally W8 (signIn alone), on
# SQLite and/or PostgreSQL, one after the other, with the figures that
# a busy machine disturbs least: the server's CPU per request, and on
# PostgreSQL the CPU of the run's own backends per request, the
# transactions committed per request and, when the cluster has
# pg_stat_statements loaded, every statement's calls per request. For
# the full benchmark use bench/run.sh; this is for before/after work on
# the write path (issue 20).
#
#   bench/w2.sh                           # both databases, 8 s each
#   bench/w2.sh --db postgres --pg-url postgres://postgres@127.0.0.1:5433/postgres
#   BENCH_BIN=path bench/w2.sh            # a binary built before, not rebuilt
#   SERVER_LOG=info,session_manager::db=debug bench/w2.sh   # the server's RUST_LOG (debug: each write group's size and time)
#   PG_AFTER_SEED_SQL='ALTER TABLE sessions SET (fillfactor = 80); VACUUM FULL sessions' bench/w2.sh --db postgres
#                                         # SQL run on the seeded PostgreSQL database before the run (a schema
#                                         # experiment without a migration)
#
# Traffic goes to 127.0.0.1 only; every wrk run is bounded in time.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench/receiver.sh
. "$ROOT/bench/receiver.sh"
cd "$ROOT"

DBS=both
PG_ADMIN_URL="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DURATION=8
WARMUP=2
CONNECTIONS=32
THREADS=2
USERS=1000
AUDIT_EVENTS=10000
PORT=18090
SIGNIN=0
WEBHOOK_ROUNDS=0
ROUNDS=1
OUT=""
# Without TLS to the local PostgreSQL unless --pg-tls (as bench/run.sh).
PG_PARAMS="?sslmode=disable"

usage() {
  cat <<EOF
usage: bench/w2.sh [options]
  --db sqlite|postgres|both  (default: both, SQLite first)
  --pg-url URL               PostgreSQL admin URL (default $PG_ADMIN_URL); a fresh database per run
  --duration S               seconds measured (default $DURATION)
  --warmup S                 seconds of warm-up (default $WARMUP)
  --connections N            wrk connections (default $CONNECTIONS)
  --audit-events M           seeded audit events (default $AUDIT_EVENTS)
  --port P                   server port (default $PORT)
  --pg-tls                   PostgreSQL: the driver's default connection (TLS when offered)
  --signin                   also W8 (signIn alone, 4 connections)
  --webhook N                after W2, N rounds of W2 with one webhook endpoint (every event
                             type, a local nginx answering 204) and then without it (deleted),
                             each on sessions of its own; each round's ratio is to the mean of
                             the runs without it on either side, and the median is printed
  --rounds N                 N rounds, each with a freshly seeded database per --db (with both,
                             SQLite first in odd rounds, PostgreSQL first in even ones): on a
                             host whose speed drifts, each round's PostgreSQL/SQLite ratio is of
                             two runs a minute apart; the median of the rounds is printed
  --out DIR                  results (default: a new directory under bench/results/)
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    --db) DBS="$2"; shift 2 ;;
    --pg-url) PG_ADMIN_URL="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --audit-events) AUDIT_EVENTS="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --signin) SIGNIN=1; shift ;;
    --webhook) WEBHOOK_ROUNDS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --pg-tls) PG_PARAMS=""; shift ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
  esac
done
case "$DBS" in sqlite) DBS="sqlite" ;; postgres) DBS="postgres" ;; both) DBS="sqlite postgres" ;;
  *) echo "--db must be sqlite, postgres or both" >&2; exit 2 ;; esac

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive number"
for tool in wrk jq curl psql; do command -v "$tool" >/dev/null || die "$tool is required"; done
NGINX=""
if [ "$WEBHOOK_ROUNDS" -gt 0 ]; then
  NGINX="$(find_nginx)"
  [ -n "$NGINX" ] || die "--webhook needs nginx (apt-get install -y nginx)"
fi

if [ -n "${BENCH_BIN:-}" ]; then
  BIN="$BENCH_BIN"
else
  cargo build --release --locked --quiet
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/session-manager"
fi
[ -x "$BIN" ] || die "no binary at $BIN"

OUT="${OUT:-$ROOT/bench/results/w2-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
SERVER_PID=""
RECEIVER_PID=""
PG_DB=""
cleanup() {
  [ -z "$RECEIVER_PID" ] || kill "$RECEIVER_PID" 2>/dev/null || true
  if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  [ -z "$PG_DB" ] || psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

HZ="$(getconf CLK_TCK)"
NCPU="$(nproc)"
GRAPHQL="http://127.0.0.1:$PORT/graphql"
# Sessions for W2 and, with --webhook, for its two runs per round.
RUNS=$(( 1 + 2 * WEBHOOK_ROUNDS ))
REVOCABLE=$(( (WARMUP + RUNS * DURATION + 3) * 4000 ))

log "== bench/w2.sh: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (dirty)'), binary $BIN"
log "   $(date -u '+%Y-%m-%d %H:%M UTC'), $NCPU cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
log "   $CONNECTIONS connections, ${WARMUP}s warm-up, ${DURATION}s measured; $USERS users, $AUDIT_EVENTS events, $REVOCABLE revocable"
log "   PostgreSQL connections: ${PG_PARAMS:-as the driver defaults (sslmode=prefer: TLS when offered)}"

server_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }
machine_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
# CPU ticks of the PostgreSQL backends serving database $1 (their process
# title names it), so other users of the same cluster are not counted.
pg_ticks() {
  local total=0 pid
  for pid in $(pgrep -f "postgres: ([^ ]+: )?[a-z_]+ $1 " || true); do
    total=$(( total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0) ))
  done
  echo "$total"
}
pg_commits() { psql "$URL" -Atqc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"; }
has_pgss() { psql "$URL" -Atqc "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'" 2>/dev/null | grep -qx 1; }

revoke_script() { # FILE IDS
  cat >"$1" <<LUA
local ids = {}
for line in io.lines("$2") do ids[#ids + 1] = line end
local counter = 0
function setup(thread) thread:set("index", counter); counter = counter + 1 end
function init(args) n = 0 end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $REVOKER_TOKEN"
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

# measure NAME DB SCRIPT CONNECTIONS THREADS: runs wrk and prints one line.
measure() {
  local name="$1" db="$2" script="$3" conns="$4" threads="$5"
  local t0 s0 b0 p0 c0 t1 s1 b1 p1 c1 req rps
  [ "$db" = postgres ] && has_pgss && psql "$URL" -Atqc "SELECT pg_stat_statements_reset()" >/dev/null
  t0=$(date +%s.%N); s0=$(server_ticks); b0=$(machine_busy); p0=0; c0=0
  if [ "$db" = postgres ]; then p0=$(pg_ticks "$PG_DB"); c0=$(pg_commits); fi
  wrk -t "$threads" -c "$conns" -d "${DURATION}s" --timeout 10s --latency -s "$script" "$GRAPHQL" >"$OUT/$db-$name.wrk" 2>&1
  t1=$(date +%s.%N); s1=$(server_ticks); b1=$(machine_busy); p1=0; c1=0
  if [ "$db" = postgres ]; then p1=$(pg_ticks "$PG_DB"); sleep 0.6; c1=$(pg_commits); fi
  req=$(awk '/requests in/ { print $1; exit }' "$OUT/$db-$name.wrk")
  rps=$(awk '/^Requests\/sec/ { printf "%.0f", $2 }' "$OUT/$db-$name.wrk")
  awk -v name="$name" -v db="$db" -v rps="$rps" -v req="$req" -v hz="$HZ" -v n="$NCPU" \
    -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v b0="$b0" -v b1="$b1" -v p0="$p0" -v p1="$p1" \
    -v c0="$c0" -v c1="$c1" -v errs="$(grep -E 'Non-2xx|Socket errors' "$OUT/$db-$name.wrk" | tr '\n' ' ')" 'BEGIN {
      wall = (t1 - t0) * n; srv = (s1 - s0) / hz; pg = (p1 - p0) / hz; busy = (b1 - b0) / hz
      printf "%s\t%s\t%s\t%.0f\t%.0f\t%.2f\t%.0f%%\t%.0f%%\t%.0f%%\t%s\n", db, name, rps, srv * 1e6 / req,
        (db == "postgres" ? pg * 1e6 / req : 0), (db == "postgres" ? (c1 - c0) / req : 0),
        100 * srv / wall, 100 * pg / wall, 100 * (busy - srv - pg) / wall, errs }' | tee -a "$OUT/results.tsv" >&2
  if [ "$db" = postgres ] && has_pgss; then
    psql "$URL" -Atq -F $'\t' -c "SELECT round(calls::numeric / $req, 3), round(total_exec_time::numeric * 1000 / $req, 1),
        round(total_plan_time::numeric * 1000 / $req, 1), round(plans::numeric / $req, 3), left(regexp_replace(query, '\s+', ' ', 'g'), 150)
      FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      ORDER BY calls DESC LIMIT 25" >"$OUT/statements-$db-$name.tsv"
    log "   statements per request (calls, exec us, plan us, plans; pg_stat_statements):"
    sed 's/^/     /' "$OUT/statements-$db-$name.tsv" >&2
    awk -F'\t' '{ c += $1; e += $2; p += $3 } END { printf "     total: %.2f statements, %.0f us executing, %.0f us planning per request\n", c, e, p }' \
      "$OUT/statements-$db-$name.tsv" >&2
    # Each group of the grouped writer is one BEGIN (the reads run outside
    # transactions; W2 opens no transaction of its own).
    awk -F'\t' '$5 == "BEGIN" && $1 > 0 { printf "     writes per group (requests per BEGIN): %.1f\n", 1 / $1 }' \
      "$OUT/statements-$db-$name.tsv" >&2
  fi
}

# The receiver: nginx answering 204 at once (see bench/receiver.sh).
start_receiver() {
  start_nginx_receiver "$NGINX" "$WORK/receiver" $(( PORT + 2 )) "$OUT/receiver.log"
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null -X POST "http://127.0.0.1:$(( PORT + 2 ))/" 2>/dev/null && return 0
    sleep 0.05
  done
  die "the receiver did not start: $(cat "$OUT/receiver.log")"
}

gql() { # TOKEN QUERY -> the answer
  curl -fsS "$GRAPHQL" -H 'content-type: application/json' -H "authorization: Bearer $1" \
    -d "$(jq -cn --arg q "$2" '{query: $q}')"
}

# webhook_rounds DB: WEBHOOK_ROUNDS times W2 with a fresh endpoint, then
# W2 with it deleted; each on its own slice of sessions.
webhook_rounds() {
  local db="$1" owner token hook state run=1
  [ -n "$RECEIVER_PID" ] || start_receiver
  owner="$(jq -cn --arg p "$(jq -r .password "$OUT/seed-$db.json")" \
    '{query: "mutation($p: String!) { signIn(email: \"w2-owner@example.com\", password: $p) { token } }", variables: {p: $p}}')"
  token="$(curl -fsS "$GRAPHQL" -H 'content-type: application/json' -d "$owner" | jq -r .data.signIn.token)"
  [ -n "$token" ] && [ "$token" != null ] || die "the owner could not sign in"
  for round in $(seq 1 "$WEBHOOK_ROUNDS"); do
    hook="$(gql "$token" "mutation { createWebhookEndpoint(url: \"http://127.0.0.1:$(( PORT + 2 ))/hook\", description: \"w2\") { endpoint { id } } }" \
      | jq -r .data.createWebhookEndpoint.endpoint.id)"
    [ -n "$hook" ] && [ "$hook" != null ] || die "the webhook endpoint was not made"
    measure "W2_webhook_$round" "$db" "$WORK/w2-run$run.lua" "$CONNECTIONS" "$THREADS"
    run=$(( run + 1 ))
    for _ in $(seq 1 300); do
      state="$(gql "$token" '{ webhookEndpoints { id lag failures } }' | jq -r --arg id "$hook" '.data.webhookEndpoints[] | select(.id == $id) | "\(.lag) \(.failures)"')"
      [ "${state%% *}" = 0 ] && break
      sleep 0.1
    done
    log "   round $round: endpoint lag, failures after the run: $state"
    gql "$token" "mutation { deleteWebhookEndpoint(id: \"$hook\") }" >/dev/null
    measure "W2_after_webhook_$round" "$db" "$WORK/w2-run$run.lua" "$CONNECTIONS" "$THREADS"
    run=$(( run + 1 ))
  done
}

printf 'db\tworkload\treq_per_s\tserver_cpu_us_per_req\tpg_backend_cpu_us_per_req\tpg_xacts_per_req\tserver_cpu\tpg_cpu\tother_cpu\terrors\n' >"$OUT/results.tsv"
for round in $(seq 1 "$ROUNDS"); do
  order="$DBS"
  if [ $(( round % 2 )) -eq 0 ] && [ "$DBS" = "sqlite postgres" ]; then order="postgres sqlite"; fi
  [ "$ROUNDS" -eq 1 ] || log "== round $round of $ROUNDS: $order"
  for db in $order; do
    if [ "$db" = sqlite ]; then
      URL="sqlite://$WORK/w2-$round.db?mode=rwc"
    else
      PG_DB="sm_w2_$(date +%s)_$$_$round"
      psql "$PG_ADMIN_URL" -qc "CREATE DATABASE $PG_DB" >/dev/null
      URL="${PG_ADMIN_URL%/*}/$PG_DB$PG_PARAMS"
      has_pgss_admin=$(psql "$PG_ADMIN_URL" -Atqc "SHOW shared_preload_libraries" | grep -c pg_stat_statements || true)
      [ "$has_pgss_admin" = 1 ] && psql "$URL" -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
    fi
    DATABASE_URL="$URL" RUST_LOG=warn "$BIN" seed --users "$USERS" --sessions-per-user 2 --audit-events "$AUDIT_EVENTS" \
      --revocable-sessions "$REVOCABLE" --bench-user-events 100 >"$OUT/seed-$db.json" 2>"$OUT/seed-$db.log" \
      || die "seed: $(cat "$OUT/seed-$db.log")"
    if [ "$db" = postgres ] && [ -n "${PG_AFTER_SEED_SQL:-}" ]; then
      log "   after the seed: $PG_AFTER_SEED_SQL"
      psql "$URL" -v ON_ERROR_STOP=1 -q <<<"$PG_AFTER_SEED_SQL;" >/dev/null
    fi
    [ "$db" = postgres ] && psql "$URL" -qc "VACUUM (ANALYZE)"
    sync
    REVOKER_TOKEN="$(jq -r '.revoker.tokens[0]' "$OUT/seed-$db.json")"
    jq -r '.revocableSessionIds[]' "$OUT/seed-$db.json" >"$WORK/ids.txt"
    half=$(( REVOCABLE * WARMUP / (WARMUP + RUNS * DURATION + 3) + 1 ))
    head -n "$half" "$WORK/ids.txt" >"$WORK/ids-warmup.txt"
    revoke_script "$WORK/w2-warmup.lua" "$WORK/ids-warmup.txt"
    # One slice of the rest per measured run (W2, then each round's two).
    slice=$(( ($(wc -l <"$WORK/ids.txt") - half - 1) / RUNS ))
    for run in $(seq 0 $(( RUNS - 1 ))); do
      sed -n "$(( half + 1 + run * slice )),$(( half + (run + 1) * slice ))p" "$WORK/ids.txt" >"$WORK/ids-run$run.txt"
      revoke_script "$WORK/w2-run$run.lua" "$WORK/ids-run$run.txt"
    done
    if [ "$WEBHOOK_ROUNDS" -gt 0 ]; then
      jq -r .password "$OUT/seed-$db.json" | DATABASE_URL="$URL" RUST_LOG=warn "$BIN" user add \
        --email w2-owner@example.com --name "W2 owner" --role owner --password-stdin >"$OUT/owner-$db.log" 2>&1 \
        || die "owner: $(cat "$OUT/owner-$db.log")"
    fi
    DATABASE_URL="$URL" BIND="127.0.0.1:$PORT" RUST_LOG="${SERVER_LOG:-info}" MAX_SESSIONS_PER_USER=0 \
      WEBHOOK_ALLOW_PRIVATE="$([ "$WEBHOOK_ROUNDS" -gt 0 ] && echo true || echo false)" \
      SIGNIN_MAX_FAILURES_PER_ACCOUNT=1000000 SIGNIN_MAX_FAILURES_PER_IP=1000000 \
      "$BIN" serve >"$OUT/server-$db.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null || die "the server did not start: $(tail -5 "$OUT/server-$db.log")"
    wrk -t "$THREADS" -c "$CONNECTIONS" -d "${WARMUP}s" --timeout 10s -s "$WORK/w2-warmup.lua" "$GRAPHQL" >"$OUT/$db-warmup.wrk" 2>&1
    # One request checked by hand: revoked, no errors.
    check_id="$(tail -n 1 "$WORK/ids.txt")"
    curl -fsS "$GRAPHQL" -H 'content-type: application/json' -H "authorization: Bearer $REVOKER_TOKEN" \
      -d "{\"query\":\"mutation(\$id: UUID!) { revokeSession(id: \$id) { id isActive } }\",\"variables\":{\"id\":\"$check_id\"}}" \
      | jq -e '.data.revokeSession.isActive == false and (.errors == null)' >/dev/null || die "W2: a revocation did not answer as expected"
    log "-- $db"
    measure W2_revoke_session "$db" "$WORK/w2-run0.lua" "$CONNECTIONS" "$THREADS"
    [ "$WEBHOOK_ROUNDS" -eq 0 ] || webhook_rounds "$db"
    if [ "$SIGNIN" = 1 ]; then
      email="$(jq -r .signInEmail "$OUT/seed-$db.json")"; password="$(jq -r .password "$OUT/seed-$db.json")"
      body="$(jq -cn --arg e "$email" --arg p "$password" '{query: "mutation($e: String!, $p: String!) { signIn(email: $e, password: $p) { token } }", variables: {e: $e, p: $p}}')"
      printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[%s]==]\n' "$body" >"$WORK/w8.lua"
      measure W8_sign_in "$db" "$WORK/w8.lua" 4 1
    fi
    kill -TERM "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
    if [ "$db" = postgres ]; then psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null; PG_DB=""; fi
    if [ "$db" = sqlite ]; then rm -f "$WORK/w2-$round.db" "$WORK/w2-$round.db-wal" "$WORK/w2-$round.db-shm"; fi
  done
  # Each round's raw files (wrk output, logs, seeds, statements) in a
  # directory of their own, not overwritten by the next round's.
  if [ "$ROUNDS" -gt 1 ]; then
    mkdir -p "$OUT/round-$round"
    find "$OUT" -maxdepth 1 -type f ! -name results.tsv -exec mv -t "$OUT/round-$round" {} +
  fi
done
log ""
log "== results: req/s, server CPU us/req, PostgreSQL backend CPU us/req, transactions/req, CPU shares of $NCPU cores (server, PostgreSQL backends of this run, everything else)"
column -t -s $'\t' "$OUT/results.tsv" >&2
# The W2 rows come in rounds, one row per database each: each round's
# ratio, then (more than one round) their median.
awk -F'\t' '
  $2 == "W2_revoke_session" { r[$1] = $3; n++
    if (n % 2 == 0 && r["sqlite"] && r["postgres"]) {
      x = r["postgres"] / r["sqlite"]; k++; all[k] = x
      printf "W2 PostgreSQL / SQLite: x%.2f (%s / %s req/s)\n", x, r["postgres"], r["sqlite"]; delete r } }
  END { if (k > 1) { asort(all); m = (k % 2) ? all[(k + 1) / 2] : (all[k / 2] + all[k / 2 + 1]) / 2
    printf "W2 PostgreSQL / SQLite: median x%.2f of %d rounds (x%.2f to x%.2f)\n", m, k, all[1], all[k] } }' \
  "$OUT/results.tsv" | tee "$OUT/ratio.txt" >&2
if [ "$WEBHOOK_ROUNDS" -gt 0 ]; then
  # Round i: W2 with the endpoint / the mean of the runs without it just
  # before (W2, or round i-1's after-run) and just after.
  awk -F'\t' '
    $2 == "W2_revoke_session" { prev[$1] = $3; pcpu[$1] = $4 }
    $2 ~ /^W2_webhook_/ { w[$1] = $3; wc[$1] = $4 }
    $2 ~ /^W2_after_webhook_/ {
      r = w[$1] / ((prev[$1] + $3) / 2); c = wc[$1] / ((pcpu[$1] + $4) / 2)
      printf "%s webhook round: x%.2f req/s (%s against %s and %s), server CPU/req x%.2f\n", $1, r, w[$1], prev[$1], $3, c
      ratios[$1] = ratios[$1] " " r; prev[$1] = $3; pcpu[$1] = $4 }
    END { for (db in ratios) { n = split(ratios[db], a, " "); asort(a)
      m = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
      printf "%s W2 with one webhook endpoint / without: median x%.2f of %d rounds\n", db, m, n } }' \
    "$OUT/results.tsv" | tee "$OUT/webhook.txt" >&2
fi
log "   load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
