#!/usr/bin/env bash
# telemetry-cost: what metrics export and tracing at 1 % sampling cost the
# Trellis proxy per request (issue 6: "overhead of telemetry measured with
# the bench harness, metrics + tracing at 1% sampling on vs off").
#
#   bash bench/telemetry-cost.sh [--secs N] [--qps N] [--reps N] [--quick] [--keep]
#
# The same fixed-rate load (fortio, HTTP/1.1, 16 connections) goes through
# trellis-proxy three times per repetition, interleaved (each repetition
# starting with the next variant):
#
#   off                no tracing; the metrics exist but nobody reads them
#   metrics            stats pushed every 1 s (stats_sinks
#                      envoy.stat_sinks.metrics_service) to a real gRPC
#                      receiver, and /stats/prometheus scraped every second
#   metrics+tracing1%  the same plus HttpConnectionManager tracing with the
#                      OpenTelemetry provider, random_sampling 1 %, server
#                      and client spans, exported over OTLP/gRPC to the
#                      same receiver
#
# The receiver is bench/telemetrysink (one gRPC server: Envoy's metrics
# service and OTLP's TraceService; it decodes everything and counts pushes
# and spans). The proxy runs on core 0; fortio, the three `trellis echo`
# backends, the receiver and the scraper on core 1. CPU per request is the
# proxy's utime+stime (/proc/PID/stat) over the measured run divided by its
# 2xx responses; the result is the median over repetitions and each
# variant's ratio to off, with fortio's p50 and p99.
#
# All traffic stays on 127.0.0.1; every process is stopped by PID. See
# bench/README.md, "telemetry-cost".
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

readonly VARIANTS=(off metrics metrics+tracing1%)

# render_config VARIANT SINK_PORT OUT writes the bootstrap of VARIANT. Every
# variant has the telemetry-sink cluster; only the telemetry variants use it.
render_config() {
  local variant=$1 sink=$2 out=$3 top="" hcm=""
  if [[ $variant == metrics* ]]; then
    top='
stats_flush_interval: 1s
stats_sinks:
- name: envoy.stat_sinks.metrics_service
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig
    transport_api_version: V3
    grpc_service: {envoy_grpc: {cluster_name: telemetry-sink}}'
  fi
  # What the control plane sets for a Mesh with tracing (docs/tracing.md).
  if [[ $variant == *tracing1% ]]; then
    hcm='
          tracing:
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                grpc_service: {envoy_grpc: {cluster_name: telemetry-sink}}
                service_name: bench
            spawn_upstream_span: true
            random_sampling: {value: 1}
            custom_tags:
            - {tag: trellis.mesh, literal: {value: default}}
            - {tag: trellis.service, literal: {value: bench}}'
  fi
  {
    cat <<EOF
node: {id: bench/telemetry-cost}
admin: {address: {socket_address: {address: 127.0.0.1, port_value: 0}}}$top
static_resources:
  listeners:
  - name: front
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: front$hcm
          route_config:
            virtual_hosts:
            - name: backend
              domains: ["*"]
              routes:
              - name: all
                match: {prefix: "/"}
                route: {cluster: backend}
          http_filters: [{name: envoy.filters.http.router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]
  clusters:
  - name: telemetry-sink
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: telemetry-sink
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $sink}}}}]}]
  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
EOF
    backend_lb_endpoints
  } >"$out"
}

# sink_total LOG KEY prints one count of the receiver's totals line.
sink_total() {
  sed -n -E "s/^totals .*\\b$2=([0-9]+).*/\\1/p" "$1"
}

# measure REP VARIANT runs one measured load through a fresh proxy with a
# fresh receiver and appends "VARIANT REP TICKS 2XX ALL P50US P99US PUSHES
# SPANS SERVED" to $WORK/runs; SERVED counts every request the proxy
# served while the receiver ran (sanity, warm-up and measured run), which
# the spans are from.
measure() {
  local rep=$1 variant=$2 dir="$WORK/$2-$1" sink_pid sink_port pushes spans served
  mkdir -p "$dir"
  spawn "$dir/sink.log" "${PIN_LOAD[@]}" "$BIN/telemetrysink" -listen 127.0.0.1:0
  sink_pid=$SPAWNED
  sink_port=$(wait_line "$dir/sink.log" '^telemetrysink listening on 127\.0\.0\.1:([0-9]+)$')
  render_config "$variant" "$sink_port" "$dir/bootstrap.yaml"
  proxy_start "$dir" "$variant"
  fortio_load "$dir" warm "$COST_WARM" "http://$PROXY_FRONT/" ||
    die "$variant: warm-up failed: $(log_tail "$dir/warm.log")"
  SCRAPER_PID=""
  [[ $variant == metrics* ]] && start_scraper "$PROXY_ADMIN" "$dir"
  measure_load "$dir" "$variant" "$PROXY_PID"
  [[ -n $SCRAPER_PID ]] && stop_pid "$SCRAPER_PID"
  stop_pid "$PROXY_PID" # flushes the queued spans first
  stop_pid "$sink_pid"
  pushes=$(sink_total "$dir/sink.log" metric_pushes)
  spans=$(sink_total "$dir/sink.log" spans)
  [[ -n $pushes && -n $spans ]] || die "$variant: the receiver printed no totals: $(log_tail "$dir/sink.log")"
  if [[ $variant == metrics* ]] && ((pushes == 0)); then die "$variant: no metrics push reached the receiver"; fi
  if [[ $variant == *tracing* ]] && ((spans == 0)); then die "$variant: no span reached the receiver"; fi
  if [[ $variant == off ]] && ((pushes + spans > 0)); then die "off: the receiver got $pushes pushes and $spans spans"; fi
  served=$((1 + $(jq '.RetCodes | [.[]] | add' "$dir/warm.json") + LOAD_ALL))
  echo "$variant $rep $LOAD_TICKS $LOAD_OK $LOAD_ALL $LOAD_P50_US $LOAD_P99_US $pushes $spans $served" >>"$WORK/runs"
  log "$variant rep $rep: $LOAD_TICKS ticks for $LOAD_OK responses; p50 ${LOAD_P50_US} µs, p99 ${LOAD_P99_US} µs; receiver: $pushes pushes, $spans spans"
}

# report prints every run and, per variant, the medians and the ratio of
# CPU per request to off.
report() {
  local hz
  hz=$(getconf CLK_TCK)
  awk -v hz="$hz" -v secs="$COST_SECS" -v qps="$COST_QPS" -v order="${VARIANTS[*]}" "$COST_AWK_MEDIAN"'
    BEGIN {
      printf "telemetry-cost: %d qps, %d s per run\n\n", qps, secs
      print "| variant | rep | 2xx | non-2xx | CPU µs/req | p50 ms | p99 ms | metric pushes | spans | spans per served request |"
      print "|---|---|---|---|---|---|---|---|---|---|"
    }
    {
      us = $3 * 1e6 / hz / $4
      printf "| %s | %d | %d | %d | %.1f | %.3f | %.3f | %d | %d | %.4f |\n", $1, $2, $4, $5 - $4, us, $6 / 1000, $7 / 1000, $8, $9, $9 / $10
      k = $1; i = ++n[k]
      cpu[k, i] = us; p50[k, i] = $6; p99[k, i] = $7
    }
    END {
      nv = split(order, vs, " ")
      for (j = 1; j <= nv; j++) {
        k = vs[j]
        delete a; for (i = 1; i <= n[k]; i++) a[i] = cpu[k, i]; mc[k] = median(a, n[k])
        delete a; for (i = 1; i <= n[k]; i++) a[i] = p50[k, i]; m50[k] = median(a, n[k])
        delete a; for (i = 1; i <= n[k]; i++) a[i] = p99[k, i]; m99[k] = median(a, n[k])
      }
      print ""
      print "| variant | CPU µs/req | CPU / off | p50 ms | p99 ms |"
      print "|---|---|---|---|---|"
      for (j = 1; j <= nv; j++) {
        k = vs[j]
        printf "| %s | %.1f | %.3f | %.3f | %.3f |\n", k, mc[k], mc[k] / mc["off"], m50[k] / 1000, m99[k] / 1000
      }
    }' "$WORK/runs"
}

main() {
  cost_args "$@"
  cost_prepare telemetry-cost
  cost_build telemetrysink ./bench/telemetrysink
  start_echo_backends 3
  log "backends on ports ${BACKEND_PORTS[*]}; machine busy $(machine_busy_pct)% before the first run"
  : >"$WORK/runs"
  local rep i n=${#VARIANTS[@]}
  # Each repetition starts one variant later, so no variant always runs
  # first (or always right after another).
  for ((rep = 1; rep <= COST_REPS; rep++)); do
    for ((i = 0; i < n; i++)); do measure "$rep" "${VARIANTS[(rep - 1 + i) % n]}"; done
  done
  report
}

main "$@"
