# shellcheck shell=bash
# The systems under test: their ports, configs, start, readiness and
# sanity checks. A system is "direct" or IMPL-hop / IMPL-pair, IMPL being
# nginx, haproxy, caddy or trellis. A pair is two instances: A (client
# side, plain HTTP in) and B (server side, mutual TLS in).
#
# Every instance has two configs: the HTTP one (configs/NAME.EXT, for the
# lat-h1, lat-h2 and sat-* scenarios) and the gRPC one (NAME-grpc.EXT, for
# lat-grpc: h2c in, h2c to the fortio gRPC backend). Only one runs at a
# time; they share the peer and admin ports.

BODY_1KIB=$(printf 'x%.0s' {1..1024})
readonly BODY_1KIB
BACKEND_PID="" GRPC_BACKEND_PID=""

# system_port_names SYSTEM prints the names of the ports SYSTEM needs.
system_port_names() {
  local sys=$1
  [[ $sys == direct ]] && return 0
  local -a names=("$sys.front_h1" "$sys.front_grpc")
  # nginx 1.22 serves HTTP/2 prior knowledge only on a port of its own.
  [[ $sys == nginx-* ]] && names+=("$sys.front_h2c")
  [[ $sys == *-pair ]] && names+=("$sys.peer")
  if [[ $sys == trellis-* ]]; then
    local role
    for role in $(system_roles "$sys"); do names+=("$sys.admin_$role"); done
  fi
  echo "${names[*]}"
}

# system_roles SYSTEM prints its instances in start order (B before A).
system_roles() {
  case $1 in
    direct) ;;
    *-pair) echo "b a" ;;
    *) echo "hop" ;;
  esac
}

config_ext() {
  case $1 in
    nginx) echo conf ;;
    haproxy) echo cfg ;;
    caddy) echo json ;;
    trellis) echo yaml ;;
  esac
}

# url SYSTEM PROTO prints the URL the load generator uses (PROTO h1 or h2;
# h2 is HTTP/2 prior knowledge over cleartext). For PROTO grpc it prints
# the host:port fortio's gRPC client takes.
url() {
  local sys=$1 proto=$2 port
  if [[ $proto == grpc ]]; then
    port=${PORT[$sys.front_grpc]:-}
    [[ $sys == direct ]] && port=${PORT[backend.grpc]}
    echo "127.0.0.1:$port"
    return 0
  fi
  if [[ $sys == direct ]]; then
    port=${PORT[backend.h1]}
    [[ $proto == h2 ]] && port=${PORT[backend.h2c]}
  else
    port=${PORT[$sys.front_h1]}
    [[ $proto == h2 && -n ${PORT[$sys.front_h2c]:-} ]] && port=${PORT[$sys.front_h2c]}
  fi
  echo "http://127.0.0.1:$port/"
}

render_configs() {
  local sys role variant
  render_instance "$BENCH_DIR/configs/backend-nginx.conf" "$WORK/backend" nginx
  for sys in "${SYSTEMS[@]}"; do
    for role in $(system_roles "$sys"); do
      local impl=${sys%-*} name=${sys%-*}-hop
      [[ $role != hop ]] && name="$impl-pair-$role"
      for variant in "" grpc; do
        render_instance "$BENCH_DIR/configs/$name${variant:+-$variant}.$(config_ext "$impl")" \
          "$(instance_dir "$sys" "$role" "$variant")" "$impl" "$sys" "$role"
      done
    done
  done
}

# instance_dir SYSTEM ROLE [VARIANT] prints the directory of one instance's
# config, logs and temporary files; VARIANT is empty (HTTP) or grpc.
instance_dir() { echo "$WORK/sys/$1/$2${3:+-$3}"; }

# render_instance TEMPLATE DIR IMPL [SYSTEM ROLE] writes DIR/config.EXT
# (and the shared snippets nginx and HAProxy include).
render_instance() {
  local tmpl=$1 dir=$2 impl=$3 sys=${4:-} role=${5:-}
  mkdir -p "$dir/tmp"
  local -a vars=(
    "DIR=$dir" "CERTS=$WORK/certs" "BODY=$BODY_1KIB"
    "BACKEND_H1=${PORT[backend.h1]}" "BACKEND_H2C=${PORT[backend.h2c]}" "BACKEND_GRPC=${PORT[backend.grpc]}"
    "FRONT_H1=${PORT[$sys.front_h1]:-}" "FRONT_H2C=${PORT[$sys.front_h2c]:-}" "FRONT_GRPC=${PORT[$sys.front_grpc]:-}"
    "PEER=${PORT[$sys.peer]:-}" "ADMIN=${PORT[$sys.admin_$role]:-}"
  )
  render "$tmpl" "$dir/config.$(config_ext "$impl")" "${vars[@]}"
  case $impl in
    nginx) render "$BENCH_DIR/configs/nginx-common.conf" "$dir/nginx-common.conf" "${vars[@]}" ;;
    haproxy) render "$BENCH_DIR/configs/haproxy-common.cfg" "$dir/common.cfg" "${vars[@]}" ;;
  esac
}

# instance_cmd IMPL DIR sets CMD to the command line of one instance,
# pinned to the proxy core, one worker / thread / GOMAXPROCS each.
instance_cmd() {
  local impl=$1 dir=$2
  local conf
  conf="$dir/config.$(config_ext "$impl")"
  case $impl in
    nginx) CMD=("${PIN_PROXY[@]}" nginx -p "$dir" -c "$conf" -e stderr) ;;
    haproxy) CMD=("${PIN_PROXY[@]}" haproxy -db -f "$dir/common.cfg" -f "$conf") ;;
    caddy) CMD=(env GOMAXPROCS=1 XDG_CONFIG_HOME="$dir" XDG_DATA_HOME="$dir"
      "${PIN_PROXY[@]}" caddy run --config "$conf") ;;
    trellis) CMD=(env GOMAXPROCS=1 "${PIN_PROXY[@]}" "$BIN/trellis-proxy" -c "$conf" --drain-timeout 1s) ;;
  esac
}

# system_start SYSTEM [VARIANT] starts every instance of SYSTEM with its
# HTTP configs (or, VARIANT grpc, its gRPC configs) and waits until it is
# ready. It sets SYS_PIDS; on failure it returns 1 with START_ERROR set.
system_start() {
  local sys=$1 impl=${1%-*} variant=${2:-} role dir
  SYS_PIDS=() START_ERROR=""
  [[ $sys == direct ]] && return 0
  for role in $(system_roles "$sys"); do
    dir=$(instance_dir "$sys" "$role" "$variant")
    instance_cmd "$impl" "$dir"
    spawn "$dir/log" "${CMD[@]}"
    SYS_PIDS+=("$SPAWNED")
    if ! wait_instance "$sys" "$role" "$SPAWNED" "$variant"; then
      START_ERROR="$sys/$role${variant:+ ($variant config)}: $START_ERROR; log: $(log_tail "$dir/log")"
      system_stop
      return 1
    fi
  done
}

system_stop() {
  local pid
  for pid in "${SYS_PIDS[@]}"; do stop_pid "$pid"; done
  SYS_PIDS=()
}

# wait_instance SYSTEM ROLE PID [VARIANT] waits up to 15 s for the
# instance's ports (and, for Trellis, its admin /ready) while PID is alive.
wait_instance() {
  local sys=$1 role=$2 pid=$3 variant=${4:-} i
  local -a ports
  read -r -a ports <<<"$(instance_ports "$sys" "$role" "$variant")"
  for ((i = 0; i < 150; i++)); do
    if ! alive "$pid"; then
      START_ERROR="exited during start"
      return 1
    fi
    if instance_ready "$sys" "$role" "${ports[@]}"; then return 0; fi
    sleep 0.1
  done
  START_ERROR="not ready after 15 s (ports ${ports[*]})"
  return 1
}

instance_ports() {
  local sys=$1 role=$2 variant=$3
  if [[ $role == b ]]; then
    echo "${PORT[$sys.peer]}"
  elif [[ $variant == grpc ]]; then
    echo "${PORT[$sys.front_grpc]}"
  else
    echo "${PORT[$sys.front_h1]} ${PORT[$sys.front_h2c]:-}"
  fi
}

instance_ready() {
  local sys=$1 role=$2 p
  shift 2
  for p in "$@"; do port_open "$p" || return 1; done
  if [[ $sys == trellis-* ]]; then
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
      "http://127.0.0.1:${PORT[$sys.admin_$role]}/ready") == 200 ]] || return 1
  fi
}

# sanity SYSTEM PROTO checks one request end to end: 200, a 1 KiB body,
# and the HTTP version asked for. It sets SANITY_ERROR on failure.
sanity() {
  local sys=$1 proto=$2 want got u
  [[ $proto == grpc ]] && { sanity_grpc "$sys"; return; }
  local -a opt=(--http1.1)
  want="200 1024 1.1"
  if [[ $proto == h2 ]]; then
    opt=(--http2-prior-knowledge)
    want="200 1024 2"
  fi
  u=$(url "$sys" "$proto")
  got=$(curl -s -o /dev/null -w '%{http_code} %{size_download} %{http_version}' \
    --max-time 5 "${opt[@]}" "$u" 2>&1) || true
  SANITY_ERROR=""
  if [[ $got != "$want" ]]; then
    SANITY_ERROR="sanity request $u ($proto): got \"$got\", want \"$want\""
    return 1
  fi
}

# sanity_grpc SYSTEM checks one gRPC call end to end: fortio's client
# pings with a 1 KiB payload (one warm-up call and two timed ones); it
# exits 0 only if every call returned grpc-status 0 with its trailers.
sanity_grpc() {
  local u rc=0 out="$WORK/sanity-grpc.log"
  u=$(url "$1" grpc)
  SANITY_ERROR=""
  run_waited "$out" timeout -k 2 10 "$FORTIO" grpcping -loglevel Warning -n 1 -payload "$BODY_1KIB" "$u" || rc=$?
  if ((rc != 0)); then
    SANITY_ERROR="sanity gRPC ping $u: fortio grpcping exited $rc: $(grep -v 'Log level is now' "$out" | tail -n 2 | one_line)"
    return 1
  fi
}

# start_backend starts the backends on the load core: the static nginx,
# and the gRPC one when lat-grpc is selected.
start_backend() {
  start_nginx_backend
  if in_list lat-grpc "${SCENARIOS[@]}"; then start_grpc_backend; fi
}

start_nginx_backend() {
  local dir="$WORK/backend"
  spawn "$dir/log" "${PIN_LOAD[@]}" nginx -p "$dir" -c "$dir/config.conf" -e stderr
  BACKEND_PID=$SPAWNED
  local i
  for ((i = 0; i < 100; i++)); do
    port_open "${PORT[backend.h1]}" && port_open "${PORT[backend.h2c]}" && break
    alive "$BACKEND_PID" || die "backend nginx exited: $(log_tail "$dir/log")"
    sleep 0.1
  done
  if ! sanity direct h1 || ! sanity direct h2; then die "backend: $SANITY_ERROR"; fi
  log "backend nginx ready on ports ${PORT[backend.h1]} (h1) ${PORT[backend.h2c]} (h2c)"
}

# start_grpc_backend starts fortio's gRPC ping server (grpc-go, h2c prior
# knowledge) with fortio's other servers (HTTP echo, redirect, TCP and UDP
# echo) disabled. Pinned to one core, the Go runtime sets GOMAXPROCS=1.
start_grpc_backend() {
  local dir="$WORK/backend-grpc" i
  mkdir -p "$dir"
  spawn "$dir/log" "${PIN_LOAD[@]}" "$FORTIO" server -loglevel Warning \
    -grpc-port "127.0.0.1:${PORT[backend.grpc]}" \
    -http-port disabled -redirect-port disabled -tcp-port disabled -udp-port disabled
  GRPC_BACKEND_PID=$SPAWNED
  for ((i = 0; i < 100; i++)); do
    port_open "${PORT[backend.grpc]}" && break
    alive "$GRPC_BACKEND_PID" || die "gRPC backend (fortio server) exited: $(log_tail "$dir/log")"
    sleep 0.1
  done
  sanity direct grpc || die "gRPC backend: $SANITY_ERROR"
  log "gRPC backend (fortio ping server) ready on port ${PORT[backend.grpc]}"
}

# ensure_backend restarts a backend that died since the last run.
ensure_backend() {
  if ! alive "$BACKEND_PID"; then
    warn "backend nginx died ($(log_tail "$WORK/backend/log")); restarting"
    start_nginx_backend
  fi
  if [[ -n $GRPC_BACKEND_PID ]] && ! alive "$GRPC_BACKEND_PID"; then
    warn "gRPC backend died ($(log_tail "$WORK/backend-grpc/log")); restarting"
    start_grpc_backend
  fi
}
