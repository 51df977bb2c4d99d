# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables set here are the callers' results
# The shared parts of the per-request cost scripts (policy-cost.sh,
# telemetry-cost.sh): options, the build, the `trellis echo` backends, one
# trellis-proxy started from a bootstrap with :0 ports, and one fixed-rate
# fortio run measured by the proxy's CPU time. Needs common.sh, setup.sh
# and procs.sh sourced first.

# Settings (cost_args sets them).
COST_SECS=30 COST_QPS=1000 COST_CONNS=16 COST_REPS=3 COST_WARM=2

# cost_usage prints the calling script's header comment (from line 2 up
# to its shellcheck directive) and exits with status $1.
cost_usage() {
  sed -n '2,/^# shellcheck/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
  exit "${1:-0}"
}

# cost_args ARGS... parses the options every cost script takes.
cost_args() {
  while (($#)); do
    case $1 in
      --secs) COST_SECS=${2:?--secs needs a number} && shift ;;
      --qps) COST_QPS=${2:?--qps needs a number} && shift ;;
      --reps) COST_REPS=${2:?--reps needs a number} && shift ;;
      --quick) COST_SECS=5 COST_REPS=1 COST_WARM=1 ;;
      --keep) KEEP=1 ;;
      -h | --help) cost_usage 0 ;;
      *) log "unknown argument $1" && cost_usage 2 ;;
    esac
    shift
  done
  local v
  for v in "$COST_SECS" "$COST_QPS" "$COST_REPS"; do
    [[ $v =~ ^[1-9][0-9]*$ ]] || die "--secs, --qps and --reps take positive integers, got $v"
  done
}

# cost_prepare NAME makes the work directory, sets the traps, checks the
# tools (jq, fortio), pins, and builds trellis and trellis-proxy into $BIN.
cost_prepare() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/trellis-$1.XXXXXX")
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
  cost_build trellis ./cmd/trellis
  # The lean sidecar build, as docs/proxy.md describes it.
  (cd "$REPO_DIR" && CGO_ENABLED=0 go build -ldflags="-s -w" -o "$BIN/trellis-proxy" ./cmd/trellis-proxy) ||
    die "cmd/trellis-proxy does not build"
}

# cost_build NAME PACKAGE builds PACKAGE (relative to the repository) into
# $BIN/NAME.
cost_build() {
  (cd "$REPO_DIR" && go build -o "$BIN/$1" "$2") || die "$2 does not build"
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

# start_echo_backends N starts N `trellis echo` backends on the load core
# and sets BACKEND_PORTS.
start_echo_backends() {
  local i
  BACKEND_PORTS=()
  for ((i = 1; i <= $1; i++)); do
    spawn "$WORK/echo-$i.log" "${PIN_LOAD[@]}" "$BIN/trellis" echo --listen 127.0.0.1:0 --name "echo-$i"
    BACKEND_PORTS+=("$(wait_line "$WORK/echo-$i.log" '.*listening on http://127\.0\.0\.1:([0-9]+).*')")
  done
}

# backend_lb_endpoints prints the lb_endpoints entries of BACKEND_PORTS,
# indented for a cluster's load_assignment.endpoints[0].lb_endpoints.
backend_lb_endpoints() {
  local p
  for p in "${BACKEND_PORTS[@]}"; do
    echo "        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $p}}}"
  done
}

# proxy_start DIR LABEL starts trellis-proxy on the proxy core with
# DIR/bootstrap.yaml (admin on :0, a listener named front on :0), checks
# one request, and sets PROXY_PID, PROXY_ADMIN and PROXY_FRONT
# (host:port).
proxy_start() {
  local dir=$1 label=$2
  spawn "$dir/proxy.log" "${PIN_PROXY[@]}" "$BIN/trellis-proxy" -c "$dir/bootstrap.yaml" --drain-timeout 2s
  PROXY_PID=$SPAWNED
  PROXY_ADMIN=$(wait_line "$dir/proxy.log" '.*admin listening on ([0-9.:]+).*')
  PROXY_FRONT=$(wait_line "$dir/proxy.log" '.*listener front listening on ([0-9.:]+).*')
  curl -fsS -o /dev/null "http://$PROXY_FRONT/" ||
    die "$label: the proxy does not answer: $(log_tail "$dir/proxy.log")"
}

# start_scraper ADMIN DIR scrapes ADMIN's /stats/prometheus every second
# from the load core and sets SCRAPER_PID.
start_scraper() {
  spawn "$2/scrape.log" "${PIN_LOAD[@]}" bash -c \
    "while curl -fsS -o /dev/null 'http://$1/stats/prometheus'; do sleep 1; done"
  SCRAPER_PID=$SPAWNED
}

# fortio_load DIR NAME SECS URL runs fortio on the load core at COST_QPS
# over COST_CONNS HTTP/1.1 connections for SECS, writing DIR/NAME.json.
fortio_load() {
  local dir=$1 name=$2 secs=$3 url=$4
  run_waited "$dir/$name.log" timeout -k 5 $((secs + 30)) "${PIN_LOAD[@]}" "$FORTIO" load -qps "$COST_QPS" \
    -c "$COST_CONNS" -t "${secs}s" -quiet -json "$dir/$name.json" "$url"
}

# measure_load DIR LABEL PID runs the measured load through PROXY_FRONT
# and sets LOAD_TICKS (PID's CPU ticks over the run), LOAD_OK (200
# responses), LOAD_ALL (all responses), LOAD_P50_US and LOAD_P99_US.
measure_load() {
  local dir=$1 label=$2 pid=$3 t0 t1
  t0=$(cpu_ticks "$pid")
  fortio_load "$dir" load "$COST_SECS" "http://$PROXY_FRONT/" ||
    die "$label: load failed: $(log_tail "$dir/load.log")"
  t1=$(cpu_ticks "$pid")
  LOAD_TICKS=$((t1 - t0))
  LOAD_OK=$(jq '.RetCodes["200"] // 0' "$dir/load.json")
  ((LOAD_OK > 0)) || die "$label: no 2xx response"
  LOAD_ALL=$(jq '.RetCodes | [.[]] | add' "$dir/load.json")
  LOAD_P50_US=$(fortio_percentile_us "$dir/load.json" 50)
  LOAD_P99_US=$(fortio_percentile_us "$dir/load.json" 99)
}

# fortio_percentile_us JSON P prints fortio's percentile P in µs.
fortio_percentile_us() {
  jq -r --argjson p "$2" '.DurationHistogram.Percentiles[] | select(.Percentile == $p) | .Value * 1e6 | round' "$1"
}

# COST_AWK_MEDIAN is an awk function median(a, n) over a[1..n] (sorts a).
# shellcheck disable=SC2016 # awk code, not shell
COST_AWK_MEDIAN='
function median(a, n,   i, j, t) {
  for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
  return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}'
readonly COST_AWK_MEDIAN
