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
# shellcheck source=lib/cost.sh
source "$BENCH_DIR/lib/cost.sh"

# render_config VARIANT OUT writes the bootstrap of VARIANT (plain or
# policies) for the three backends.
render_config() {
  local variant=$1 out=$2 route_extra="" cluster_extra=""
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
    backend_lb_endpoints
  } >"$out"
}

# measure REP VARIANT runs one measured load through a fresh proxy and
# appends "VARIANT REP TICKS RESPONSES" to $WORK/runs.
measure() {
  local rep=$1 variant=$2 dir="$WORK/$2-$1"
  mkdir -p "$dir"
  render_config "$variant" "$dir/bootstrap.yaml"
  proxy_start "$dir" "$variant"
  fortio_load "$dir" warm "$COST_WARM" "http://$PROXY_FRONT/" ||
    die "$variant: warm-up failed: $(log_tail "$dir/warm.log")"
  SCRAPER_PID=""
  [[ $variant == policies ]] && start_scraper "$PROXY_ADMIN" "$dir"
  measure_load "$dir" "$variant" "$PROXY_PID"
  [[ -n $SCRAPER_PID ]] && stop_pid "$SCRAPER_PID"
  stop_pid "$PROXY_PID"
  echo "$variant $rep $LOAD_TICKS $LOAD_OK $LOAD_ALL" >>"$WORK/runs"
  log "$variant rep $rep: $LOAD_TICKS ticks for $LOAD_OK responses"
}

# report prints the per-run figures and the median CPU µs per request of
# each variant, with their ratio.
report() {
  local hz
  hz=$(getconf CLK_TCK)
  awk -v hz="$hz" -v secs="$COST_SECS" -v qps="$COST_QPS" "$COST_AWK_MEDIAN"'
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
  cost_args "$@"
  cost_prepare policy-cost
  start_echo_backends 3
  log "backends on ports ${BACKEND_PORTS[*]}; machine busy $(machine_busy_pct)% before the first run"
  : >"$WORK/runs"
  local rep
  for ((rep = 1; rep <= COST_REPS; rep++)); do
    measure "$rep" plain
    measure "$rep" policies
  done
  report
}

main "$@"
