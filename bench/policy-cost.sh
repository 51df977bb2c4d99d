#!/usr/bin/env bash
# policy-cost: what retries, a retry budget, outlier detection and metrics
# scraping cost the Trellis proxy per request (issue 3: "enabling retries,
# outlier detection and metrics costs under 10% CPU per request").
#
#   bash bench/policy-cost.sh [--secs N] [--qps N] [--reps N] [--quick] [--keep]
#
# The same fixed-rate load (fortio, HTTP/1.1, 16 connections) goes through
# trellis-proxy twice per repetition, interleaved: with a plain bootstrap
# (one route, a cluster of three healthy `trellis echo` backends) and with
# the policies (route retry_policy with previous_hosts, a retry budget,
# outlier detection with consecutive_5xx and failure_percentage at a 1 s
# interval, and /stats/prometheus scraped every second). The proxy runs on
# core 0, everything else on core 1. CPU per request is the proxy's
# utime+stime (/proc/PID/stat) over the measured run divided by its 2xx
# responses; the result is the median over repetitions and the ratio
# policies / plain. The backends never fail, so no retry fires: this
# measures the bookkeeping the policies add to every request.
#
# All traffic stays on 127.0.0.1; every process is stopped by PID. See
# bench/README.md, "policy-cost".
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

PC_SECS=30 PC_QPS=1000 PC_CONNS=16 PC_REPS=3 PC_WARM=2

pc_usage() {
  sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

pc_args() {
  while (($#)); do
    case $1 in
      --secs) PC_SECS=$2 && shift ;;
      --qps) PC_QPS=$2 && shift ;;
      --reps) PC_REPS=$2 && shift ;;
      --quick) PC_SECS=5 PC_REPS=1 PC_WARM=1 ;;
      --keep) KEEP=1 ;;
      -h | --help) pc_usage 0 ;;
      *) log "unknown argument $1" && pc_usage 2 ;;
    esac
    shift
  done
}

# wait_line LOG REGEX prints the first match of REGEX's group 1 in LOG,
# polling up to 10 s.
wait_line() {
  local i m
  for ((i = 0; i < 100; i++)); do
    m=$(sed -n -E "s#$2#\1#p" "$1" 2>/dev/null | head -n 1)
    if [[ -n $m ]]; then
      echo "$m"
      return 0
    fi
    sleep 0.1
  done
  die "no line matching $2 in $1: $(log_tail "$1")"
}

# render_config VARIANT OUT writes the bootstrap of VARIANT (plain or
# policies) for the three backends.
render_config() {
  local variant=$1 out=$2 route_extra="" cluster_extra="" p
  if [[ $variant == policies ]]; then
    route_extra='
                  retry_policy:
                    retry_on: "5xx,reset,connect-failure"
                    num_retries: 2
                    retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts, typed_config: {"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}}]
                    host_selection_retry_max_attempts: 3'
    cluster_extra='
    circuit_breakers: {thresholds: [{retry_budget: {budget_percent: {value: 20}, min_retry_concurrency: 10}}]}
    outlier_detection:
      interval: 1s
      base_ejection_time: 30s
      max_ejection_percent: 34
      consecutive_5xx: 5
      failure_percentage_threshold: 50
      enforcing_failure_percentage: 100
      failure_percentage_minimum_hosts: 3
      failure_percentage_request_volume: 50'
  fi
  {
    cat <<EOF
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}
static_resources:
  listeners:
  - name: front
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front
          route_config:
            virtual_hosts:
            - name: backend
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route:
                  cluster: backend$route_extra
          http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s$cluster_extra
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
EOF
    for p in "${BACKEND_PORTS[@]}"; do
      echo "        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $p}}}"
    done
  } >"$out"
}

# measure REP VARIANT runs one measured load through a fresh proxy and
# appends "VARIANT REP TICKS RESPONSES" to $WORK/runs.
measure() {
  local rep=$1 variant=$2 dir="$WORK/$2-$1" proxy front admin scraper="" t0 t1 ok
  mkdir -p "$dir"
  render_config "$variant" "$dir/bootstrap.yaml"
  spawn "$dir/proxy.log" "${PIN_PROXY[@]}" "$BIN/trellis-proxy" -c "$dir/bootstrap.yaml"
  proxy=$SPAWNED
  admin=$(wait_line "$dir/proxy.log" '.*admin listening on ([0-9.:]+).*')
  front=$(wait_line "$dir/proxy.log" '.*listener front listening on ([0-9.:]+).*')
  curl -fsS -o /dev/null "http://$front/" || die "$variant: the proxy does not answer: $(log_tail "$dir/proxy.log")"
  run_waited "$dir/warm.log" timeout -k 5 $((PC_WARM + 30)) "${PIN_LOAD[@]}" "$FORTIO" load -qps "$PC_QPS" \
    -c "$PC_CONNS" -t "${PC_WARM}s" -quiet "http://$front/" || die "$variant: warm-up failed: $(log_tail "$dir/warm.log")"
  if [[ $variant == policies ]]; then
    spawn "$dir/scrape.log" "${PIN_LOAD[@]}" bash -c \
      "while curl -fsS -o /dev/null 'http://$admin/stats/prometheus'; do sleep 1; done"
    scraper=$SPAWNED
  fi
  t0=$(cpu_ticks "$proxy")
  run_waited "$dir/load.log" timeout -k 5 $((PC_SECS + 30)) "${PIN_LOAD[@]}" "$FORTIO" load -qps "$PC_QPS" \
    -c "$PC_CONNS" -t "${PC_SECS}s" -quiet -json "$dir/load.json" "http://$front/" ||
    die "$variant: load failed: $(log_tail "$dir/load.log")"
  t1=$(cpu_ticks "$proxy")
  [[ -n $scraper ]] && stop_pid "$scraper"
  stop_pid "$proxy"
  ok=$(jq '.RetCodes["200"] // 0' "$dir/load.json")
  ((ok > 0)) || die "$variant: no 2xx response"
  echo "$variant $rep $((t1 - t0)) $ok $(jq '.RetCodes | [.[]] | add' "$dir/load.json")" >>"$WORK/runs"
  log "$variant rep $rep: $((t1 - t0)) ticks for $ok responses"
}

# report prints the per-run figures and the median CPU µs per request of
# each variant, with their ratio.
report() {
  local hz
  hz=$(getconf CLK_TCK)
  awk -v hz="$hz" -v secs="$PC_SECS" -v qps="$PC_QPS" '
    function median(a, n,   i, j, t) {
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
      us = $3 * 1e6 / hz / $4
      printf "| %s | %d | %d | %d | %.1f |\n", $1, $2, $4, $5 - $4, us
      v[$1, ++n[$1]] = us
    }
    BEGIN {
      printf "policy-cost: %d qps, %d s per run\n\n", qps, secs
      print "| variant | rep | 2xx | non-2xx | CPU µs/req |"
      print "|---|---|---|---|---|"
    }
    END {
      for (k in n) { delete a; for (i = 1; i <= n[k]; i++) a[i] = v[k, i]; m[k] = median(a, n[k]) }
      printf "\nmedian CPU µs/req: plain %.1f, policies %.1f; policies / plain = %.3f (goal < 1.10)\n",
        m["plain"], m["policies"], m["policies"] / m["plain"]
    }' "$WORK/runs"
}

main() {
  pc_args "$@"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/trellis-policy-cost.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  command -v jq >/dev/null || die "jq not found (apt-get install jq)"
  FORTIO=$(command -v fortio || echo "$HOME/go/bin/fortio")
  [[ -x $FORTIO ]] || die "fortio not found: go install fortio.org/fortio@v$FORTIO_VERSION (or run bench/run.sh once)"
  setup_pinning
  BIN="$WORK/bin"
  mkdir -p "$BIN"
  log "building trellis and trellis-proxy"
  (cd "$REPO_DIR" && go build -o "$BIN/trellis" ./cmd/trellis) || die "cmd/trellis does not build"
  (cd "$REPO_DIR" && CGO_ENABLED=0 go build -ldflags="-s -w" -o "$BIN/trellis-proxy" ./cmd/trellis-proxy) ||
    die "cmd/trellis-proxy does not build"
  BACKEND_PORTS=()
  local i
  for i in 1 2 3; do
    spawn "$WORK/echo-$i.log" "${PIN_LOAD[@]}" "$BIN/trellis" echo --listen 127.0.0.1:0 --name "echo-$i"
    BACKEND_PORTS+=("$(wait_line "$WORK/echo-$i.log" '.*listening on http://127\.0\.0\.1:([0-9]+).*')")
  done
  log "backends on ports ${BACKEND_PORTS[*]}; machine busy $(machine_busy_pct)% before the first run"
  : >"$WORK/runs"
  local rep
  for ((rep = 1; rep <= PC_REPS; rep++)); do
    measure "$rep" plain
    measure "$rep" policies
  done
  report
}

main "$@"
