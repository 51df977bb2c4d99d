#!/usr/bin/env bash
# mtls-mesh: the Trellis mutual-TLS sidecar pair with mesh-issued
# certificates, and what a TLS handshake between the two sidecars costs,
# with and without session resumption (issue 5).
#
#   bash bench/mtls-mesh.sh [--secs N] [--qps N] [--reps N] [--quick] [--keep] [--profile]
#
# --profile also takes a CPU profile of A and B during each measured run
# (cpu-a.pprof, cpu-b.pprof in the kept work directory); the profiler's own
# CPU then counts in the figures, so use it to look, not to record.
#
# bench/meshcerts makes the certificates with the mesh's identity library
# (a CA from ca.Generate; keys, CSRs and leaves as a proxy and the control
# plane make them; SPIFFE IDs spiffe://bench.trellis.local/bench/a and /b),
# and both bootstraps check the peer's SPIFFE ID. The load is fortio,
# HTTP/1.1, one connection at a fixed rate, through client → A → mutual
# TLS (HTTP/2) → B → nginx backend. Three variants of A, interleaved in
# each repetition:
#
#   keepalive  A keeps its connection to B (idle_timeout 3600s)
#   full       idle_timeout 1ms: A closes the idle connection between two
#              requests, so each request opens a new one; max_session_keys
#              0: every handshake is a full one
#   resumed    the same with max_session_keys 1: A resumes its TLS session
#              (TLS 1.3 PSK with a fresh key exchange)
#   plain      idle_timeout 1ms without TLS between A and B (h2c): what a
#              new connection costs without any handshake
#
# The handshakes are counted (A's trellis_cluster_upstream_connections_total)
# and the CPU of A and B measured apart (/proc/PID/stat), so the extra CPU
# per new connection over keepalive comes out for each side, and the TLS
# share of it over plain. Proxies on core 0,
# fortio and nginx on core 1. All traffic stays on 127.0.0.1; every process
# is stopped by PID. See bench/README.md, "mtls-mesh".
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)
readonly BENCH_DIR REPO_DIR

# shellcheck source=lib/common.sh
source "$BENCH_DIR/lib/common.sh"
# shellcheck source=lib/setup.sh
source "$BENCH_DIR/lib/setup.sh"
# shellcheck source=lib/procs.sh
source "$BENCH_DIR/lib/procs.sh"

MM_SECS=10 MM_QPS=250 MM_REPS=3 MM_WARM=2 MM_PROFILE=0
readonly VARIANTS=(keepalive full resumed plain)

mm_usage() {
  sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

mm_args() {
  while (($#)); do
    case $1 in
      --secs) MM_SECS=$2 && shift ;;
      --qps) MM_QPS=$2 && shift ;;
      --reps) MM_REPS=$2 && shift ;;
      --quick) MM_SECS=3 MM_REPS=1 MM_WARM=1 ;;
      --keep) KEEP=1 ;;
      --profile) MM_PROFILE=1 KEEP=1 ;;
      -h | --help) mm_usage 0 ;;
      *) log "unknown argument $1" && mm_usage 2 ;;
    esac
    shift
  done
}

# variant_vars VARIANT prints A's IDLE_TIMEOUT= and MAX_SESSION_KEYS=.
variant_vars() {
  case $1 in
    keepalive) echo "IDLE_TIMEOUT=3600s MAX_SESSION_KEYS=1" ;;
    full) echo "IDLE_TIMEOUT=0.001s MAX_SESSION_KEYS=0" ;;
    resumed | plain) echo "IDLE_TIMEOUT=0.001s MAX_SESSION_KEYS=1" ;;
  esac
}

# start_instance NAME CONFIG sets SPAWNED to a trellis-proxy pinned to the
# proxy core with GOMAXPROCS=1, as in bench/run.sh.
start_instance() {
  spawn "$WORK/$1.log" env GOMAXPROCS=1 "${PIN_PROXY[@]}" "$BIN/trellis-proxy" -c "$2" --drain-timeout 1s
}

# wait_ready PID PORT ADMIN waits up to 15 s for PORT and ADMIN's /ready.
wait_ready() {
  local i
  for ((i = 0; i < 150; i++)); do
    alive "$1" || return 1
    if port_open "$2" && [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
      "http://127.0.0.1:$3/ready") == 200 ]]; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

# upstream_cx prints A's count of connections opened to B.
upstream_cx() {
  curl -fsS --max-time 5 "http://127.0.0.1:${PORT[a.admin]}/stats/prometheus" |
    awk '/^trellis_cluster_upstream_connections_total\{.*cluster="peer"/ {print $NF; f=1} END {if (!f) print 0}'
}

# measure REP VARIANT runs one measured load through a fresh pair and
# appends "VARIANT REP TICKS_A TICKS_B OK ALL CONNS P50_MS P99_MS" to
# $WORK/runs.
measure() {
  local rep=$1 variant=$2 dir="$WORK/$2-$1" a b ta0 tb0 ta1 tb1 c0 c1 ok all got
  local -a vars
  mkdir -p "$dir"
  read -r -a vars <<<"$(variant_vars "$variant")"
  render "$BENCH_DIR/configs/trellis-pair-a-mesh.yaml" "$dir/a.yaml" "${vars[@]}" \
    "CERTS=$WORK/certs" "ADMIN=${PORT[a.admin]}" "FRONT_H1=${PORT[a.front]}" "PEER=${PORT[b.peer]}" \
    "PEER_ID=${ID[b]}"
  local bconf=$WORK/b.yaml
  if [[ $variant == plain ]]; then
    sed -i '/^ *# tls-begin/,/^ *# tls-end/d' "$dir/a.yaml"
    bconf=$WORK/b-plain.yaml
  fi
  start_instance "$variant-$rep-b" "$bconf"
  b=$SPAWNED
  wait_ready "$b" "${PORT[b.peer]}" "${PORT[b.admin]}" || die "B not ready: $(log_tail "$WORK/$variant-$rep-b.log")"
  start_instance "$variant-$rep-a" "$dir/a.yaml"
  a=$SPAWNED
  wait_ready "$a" "${PORT[a.front]}" "${PORT[a.admin]}" || die "A not ready: $(log_tail "$WORK/$variant-$rep-a.log")"
  local u="http://127.0.0.1:${PORT[a.front]}/"
  got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 5 "$u") || true
  [[ $got == "200 1024" ]] || die "$variant: sanity request through the pair: got \"$got\", want \"200 1024\""
  run_waited "$dir/warm.log" timeout -k 5 $((MM_WARM + 30)) "${PIN_LOAD[@]}" "$FORTIO" load -qps "$MM_QPS" \
    -c 1 -t "${MM_WARM}s" -quiet "$u" || die "$variant: warm-up failed: $(log_tail "$dir/warm.log")"
  c0=$(upstream_cx)
  ta0=$(cpu_ticks "$a") tb0=$(cpu_ticks "$b")
  local -a prof=()
  if ((MM_PROFILE)); then
    local side
    for side in a b; do
      spawn "$dir/pprof-$side.log" "${PIN_LOAD[@]}" curl -fsS -o "$dir/cpu-$side.pprof" \
        "http://127.0.0.1:${PORT[$side.admin]}/debug/pprof/profile?seconds=$((MM_SECS > 2 ? MM_SECS - 1 : 1))"
      prof+=("$SPAWNED")
    done
  fi
  run_waited "$dir/load.log" timeout -k 5 $((MM_SECS + 30)) "${PIN_LOAD[@]}" "$FORTIO" load -qps "$MM_QPS" \
    -c 1 -t "${MM_SECS}s" -r 0.00001 -p "50,99" -quiet -json "$dir/load.json" "$u" ||
    die "$variant: load failed: $(log_tail "$dir/load.log")"
  ta1=$(cpu_ticks "$a") tb1=$(cpu_ticks "$b")
  local p
  for p in "${prof[@]}"; do wait "$p" || true; forget_pid "$p"; done
  c1=$(upstream_cx)
  stop_pid "$a"
  stop_pid "$b"
  ok=$(jq '.RetCodes["200"] // 0' "$dir/load.json")
  all=$(jq '.RetCodes | [.[]] | add' "$dir/load.json")
  ((ok > 0)) || die "$variant: no 2xx response"
  local p50 p99
  p50=$(jq '.DurationHistogram.Percentiles[] | select(.Percentile == 50) | .Value * 1000' "$dir/load.json")
  p99=$(jq '.DurationHistogram.Percentiles[] | select(.Percentile == 99) | .Value * 1000' "$dir/load.json")
  echo "$variant $rep $((ta1 - ta0)) $((tb1 - tb0)) $ok $all $((c1 - c0)) $p50 $p99" >>"$WORK/runs"
  log "$variant rep $rep: A $((ta1 - ta0)) B $((tb1 - tb0)) ticks, $ok responses, $((c1 - c0)) connections to B"
}

# report prints every run and the medians per variant, then the extra CPU
# per handshake over keepalive, for A (client), B (server) and both.
report() {
  local hz
  hz=$(getconf CLK_TCK)
  awk -v hz="$hz" -v secs="$MM_SECS" -v qps="$MM_QPS" '
    function median(a, n,   i, j, t) {
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function med(k, col,   i, a) { delete a; for (i = 1; i <= n[k]; i++) a[i] = v[k, col, i]; return median(a, n[k]) }
    BEGIN {
      printf "mtls-mesh: fortio HTTP/1.1, 1 connection, %d qps, %d s per run\n\n", qps, secs
      print "| variant | rep | 2xx | non-2xx | handshakes | handshakes/req | A CPU µs/req | B CPU µs/req | p50 ms | p99 ms |"
      print "|---|---|---|---|---|---|---|---|---|---|"
    }
    {
      k = $1; i = ++n[k]
      v[k, "a", i] = $3 * 1e6 / hz / $5
      v[k, "b", i] = $4 * 1e6 / hz / $5
      v[k, "h", i] = $7 / $5
      v[k, "p50", i] = $8; v[k, "p99", i] = $9
      printf "| %s | %d | %d | %d | %d | %.3f | %.1f | %.1f | %.3f | %.3f |\n", k, $2, $5, $6 - $5, $7, $7 / $5,
        v[k, "a", i], v[k, "b", i], $8, $9
    }
    END {
      print "\nMedians over the repetitions:\n"
      print "| variant | handshakes/req | A CPU µs/req | B CPU µs/req | A+B CPU µs/req | p50 ms | p99 ms |"
      print "|---|---|---|---|---|---|---|"
      split("keepalive full resumed plain", order, " ")
      for (j = 1; j <= 4; j++) {
        k = order[j]
        if (!n[k]) continue
        m[k, "a"] = med(k, "a"); m[k, "b"] = med(k, "b"); m[k, "h"] = med(k, "h")
        printf "| %s | %.3f | %.1f | %.1f | %.1f | %.3f | %.3f |\n", k, m[k, "h"], m[k, "a"], m[k, "b"],
          m[k, "a"] + m[k, "b"], med(k, "p50"), med(k, "p99")
      }
      print "\nExtra CPU per new connection over keepalive ((µs/req − keepalive µs/req) / connections per"
      print "request, from the medians); the TLS rows subtract plain, leaving the handshake alone, and give"
      print "the handshakes per second one core could do at that cost:\n"
      print "| per new connection | A (client) µs | B (server) µs | A+B µs | A hs/s/core | B hs/s/core |"
      print "|---|---|---|---|---|---|"
      for (j = 2; j <= 4; j++) {
        k = order[j]
        if (!n[k] || !n["keepalive"] || m[k, "h"] == 0) continue
        d[k, "a"] = (m[k, "a"] - m["keepalive", "a"]) / m[k, "h"]
        d[k, "b"] = (m[k, "b"] - m["keepalive", "b"]) / m[k, "h"]
        printf "| %s: %s | %.0f | %.0f | %.0f | | |\n", k, (k == "plain" ? "connection, no TLS" : "connection and handshake"),
          d[k, "a"], d[k, "b"], d[k, "a"] + d[k, "b"]
      }
      for (j = 2; j <= 3; j++) {
        k = order[j]
        if (!((k, "a") in d) || !(("plain", "a") in d)) continue
        da = d[k, "a"] - d["plain", "a"]; db = d[k, "b"] - d["plain", "b"]
        printf "| %s TLS handshake (minus plain) | %.0f | %.0f | %.0f | %s | %s |\n", k, da, db, da + db,
          (da > 0 ? sprintf("%.0f", 1e6 / da) : "–"), (db > 0 ? sprintf("%.0f", 1e6 / db) : "–")
      }
    }' "$WORK/runs"
}

main() {
  mm_args "$@"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/trellis-mtls-mesh.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  local tool
  for tool in jq curl nginx; do
    command -v "$tool" >/dev/null || die "$tool not found (bash bench/run.sh installs what it needs)"
  done
  FORTIO=$(command -v fortio || echo "$HOME/go/bin/fortio")
  [[ -x $FORTIO ]] || die "fortio not found: go install fortio.org/fortio@v$FORTIO_VERSION (or run bench/run.sh once)"
  setup_pinning
  BIN="$WORK/bin"
  mkdir -p "$BIN"
  log "building trellis-proxy, bench/report and bench/meshcerts"
  (cd "$REPO_DIR" && CGO_ENABLED=0 go build -ldflags="-s -w" -o "$BIN/trellis-proxy" ./cmd/trellis-proxy) ||
    die "cmd/trellis-proxy does not build"
  (cd "$REPO_DIR" && go build -o "$BIN/report" ./bench/report && go build -o "$BIN/meshcerts" ./bench/meshcerts) ||
    die "bench/report or bench/meshcerts does not build"

  declare -gA ID=()
  local svc id
  while read -r svc id; do ID[$svc]=$id; done < <("$BIN/meshcerts" -dir "$WORK/certs")
  [[ -n ${ID[a]:-} && -n ${ID[b]:-} ]] || die "bench/meshcerts printed no identities"
  log "mesh certificates: A ${ID[a]}, B ${ID[b]}"

  local -a names=(backend.h1 backend.h2c a.front a.admin b.peer b.admin) ports
  read -r -a ports <<<"$("$BIN/report" ports -n "${#names[@]}")"
  ((${#ports[@]} == ${#names[@]})) || die "could not allocate ${#names[@]} free ports"
  declare -gA PORT=()
  local i
  for i in "${!names[@]}"; do PORT[${names[$i]}]=${ports[$i]}; done

  local body
  body=$(printf 'x%.0s' {1..1024})
  mkdir -p "$WORK/backend/tmp"
  local -a bvars=("DIR=$WORK/backend" "BODY=$body" "BACKEND_H1=${PORT[backend.h1]}" "BACKEND_H2C=${PORT[backend.h2c]}")
  render "$BENCH_DIR/configs/backend-nginx.conf" "$WORK/backend/config.conf" "${bvars[@]}"
  render "$BENCH_DIR/configs/nginx-common.conf" "$WORK/backend/nginx-common.conf" "${bvars[@]}"
  spawn "$WORK/backend/log" "${PIN_LOAD[@]}" nginx -p "$WORK/backend" -c "$WORK/backend/config.conf" -e stderr
  for ((i = 0; i < 100; i++)); do
    port_open "${PORT[backend.h1]}" && break
    sleep 0.1
  done
  port_open "${PORT[backend.h1]}" || die "backend nginx did not start: $(log_tail "$WORK/backend/log")"
  render "$BENCH_DIR/configs/trellis-pair-b-mesh.yaml" "$WORK/b.yaml" "CERTS=$WORK/certs" \
    "ADMIN=${PORT[b.admin]}" "PEER=${PORT[b.peer]}" "BACKEND_H1=${PORT[backend.h1]}" "PEER_ID=${ID[a]}"
  sed '/^ *# tls-begin/,/^ *# tls-end/d' "$WORK/b.yaml" >"$WORK/b-plain.yaml"

  log "machine busy $(machine_busy_pct)% before the first run; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  : >"$WORK/runs"
  local rep variant
  for ((rep = 1; rep <= MM_REPS; rep++)); do
    for variant in "${VARIANTS[@]}"; do measure "$rep" "$variant"; done
  done
  log "load average after the last run $(cut -d' ' -f1-3 /proc/loadavg)"
  report
}

main "$@"
