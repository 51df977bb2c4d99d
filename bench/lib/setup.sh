# shellcheck shell=bash
# Machine setup for bench/run.sh: packages, tools, builds, certificates,
# ports, configs, run metadata and the final report.

readonly PACKAGES=(nginx haproxy caddy wrk nghttp2-client openssl util-linux curl)
readonly PACKAGED_DAEMONS=(nginx haproxy caddy)
POLICY_RC=/usr/sbin/policy-rc.d
POLICY_RC_OURS=0
PIN_LOAD=() PIN_PROXY=()

setup_machine() {
  command -v go >/dev/null || die "go not found in PATH"
  FORTIO="$(go env GOBIN)"
  FORTIO="${FORTIO:-$(go env GOPATH)/bin}/fortio"
  if ((INSTALL)); then
    install_packages
    install_fortio
  fi
  local tool
  for tool in nginx haproxy caddy wrk h2load openssl taskset curl go "$FORTIO"; do
    command -v "$tool" >/dev/null || die "$tool not found (run without --no-install)"
  done
  stop_packaged_daemons
  setup_pinning
}

# install_packages installs the missing Debian packages. While apt runs, a
# policy-rc.d (if none exists) keeps the packaged daemons from starting.
install_packages() {
  local -a missing=()
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  ((EUID == 0)) || die "missing packages ${missing[*]}: run as root or install them"
  log "installing ${missing[*]}"
  if [[ ! -e $POLICY_RC ]]; then
    printf '#!/bin/sh\n# trellis bench: no daemon starts during apt-get\nexit 101\n' >"$POLICY_RC"
    chmod 755 "$POLICY_RC"
    POLICY_RC_OURS=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  remove_policy_rc
}

remove_policy_rc() {
  if ((POLICY_RC_OURS)); then
    rm -f "$POLICY_RC"
    POLICY_RC_OURS=0
  fi
}

install_fortio() {
  if [[ -x $FORTIO ]] && [[ $("$FORTIO" version 2>/dev/null) == "$FORTIO_VERSION"* ]]; then
    return 0
  fi
  log "installing fortio $FORTIO_VERSION"
  # Newer fortio releases need a module the proxy does not serve.
  go install "fortio.org/fortio@v$FORTIO_VERSION"
}

# stop_packaged_daemons stops nginx, HAProxy and Caddy as started by their
# Debian packages (they would hold port 80 and compete for the CPU). The
# benchmark's own instances run from the work directory, not from these.
stop_packaged_daemons() {
  local svc
  for svc in "${PACKAGED_DAEMONS[@]}"; do
    if [[ -d /run/systemd/system ]]; then
      systemctl stop "$svc" >/dev/null 2>&1 || true
    elif command -v service >/dev/null; then
      service "$svc" stop >/dev/null 2>&1 || true
    fi
  done
  kill_pidfile /run/nginx.pid
  kill_pidfile /run/haproxy.pid
  kill_packaged_caddy
  sleep 0.5
  if port_open 80; then warn "something still listens on port 80 (not started by this script)"; fi
}

kill_pidfile() {
  local pid
  [[ -r $1 ]] || return 0
  pid=$(<"$1")
  if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid"; then
    log "stopping packaged daemon pid $pid ($1)"
    kill "$pid" 2>/dev/null || true
  fi
}

# kill_packaged_caddy stops a caddy run from /etc/caddy (the Debian unit's
# config); it has no pid file.
kill_packaged_caddy() {
  local d pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ $(readlink "$d/exe" 2>/dev/null) == */caddy ]] || continue
    tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -q '/etc/caddy/' || continue
    log "stopping packaged caddy pid $pid"
    kill "$pid" 2>/dev/null || true
  done
}

setup_pinning() {
  if (($(nproc) >= 2)); then
    PIN_PROXY=(taskset -c "$CORE_PROXY")
    PIN_LOAD=(taskset -c "$CORE_LOAD")
  else
    warn "fewer than 2 cores: nothing is pinned; saturation numbers mean little"
  fi
}

# build_tools builds the report tool (required) and trellis-proxy (may
# fail while the proxy is being written: Trellis is then reported failed).
build_tools() {
  BIN="$WORK/bin"
  mkdir -p "$BIN"
  log "building bench/report"
  (cd "$REPO_DIR" && go build -o "$BIN/report" ./bench/report) || die "bench/report does not build"
  log "building trellis-proxy"
  TRELLIS_BUILD_ERROR=""
  # The lean sidecar build, as docs/proxy.md describes it.
  if ! (cd "$REPO_DIR" && CGO_ENABLED=0 go build -ldflags="-s -w" -o "$BIN/trellis-proxy" ./cmd/trellis-proxy) >"$WORK/trellis-build.log" 2>&1; then
    TRELLIS_BUILD_ERROR="go build ./cmd/trellis-proxy failed: $(head -c 400 "$WORK/trellis-build.log" | one_line)"
    warn "$TRELLIS_BUILD_ERROR; Trellis is reported as failed"
    BROKEN[trellis-hop]="trellis-proxy did not build"
    BROKEN[trellis-pair]="trellis-proxy did not build"
  fi
}

# make_certs writes an ECDSA P-256 CA and two leaf certificates (proxy-a:
# client side, proxy-b: server side) valid for two days.
make_certs() {
  local dir=$1 name
  mkdir -p "$dir"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 2 -subj "/CN=trellis-bench-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.pem" 2>/dev/null
  for name in proxy-a proxy-b; do
    make_leaf "$dir" "$name"
  done
}

make_leaf() {
  local dir=$1 name=$2
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$name.key" 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "/CN=$name.trellis.test" -out "$dir/$name.csr" 2>/dev/null
  cat >"$dir/$name.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:$name.trellis.test,URI:spiffe://trellis.test/ns/bench/sa/$name
EXT
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 2 -sha256 -extfile "$dir/$name.ext" -out "$dir/$name.pem" 2>/dev/null
  cat "$dir/$name.pem" "$dir/$name.key" >"$dir/$name.full.pem" # HAProxy's crt
}

# allocate_ports picks every port of the run at once, below the kernel's
# ephemeral range so that client sockets of earlier runs cannot hold them.
allocate_ports() {
  local -a names ports
  local i sys
  names=(backend.h1 backend.h2c backend.grpc)
  for sys in "${ALL_SYSTEMS[@]}"; do
    read -r -a ports <<<"$(system_port_names "$sys")"
    names+=("${ports[@]}")
  done
  read -r -a ports <<<"$("$BIN/report" ports -n "${#names[@]}")"
  ((${#ports[@]} == ${#names[@]})) || die "could not allocate ${#names[@]} free ports"
  declare -gA PORT=()
  for i in "${!names[@]}"; do PORT[${names[$i]}]=${ports[$i]}; done
}

# render TEMPLATE OUT KEY=VALUE... replaces {{KEY}} in TEMPLATE.
render() {
  local tmpl=$1 out=$2 kv
  shift 2
  local -a expr=()
  for kv in "$@"; do expr+=(-e "s|{{${kv%%=*}}}|${kv#*=}|g"); done
  sed "${expr[@]}" "$tmpl" >"$out"
  if grep -q '{{[A-Z0-9_]*}}' "$out"; then
    die "$out: unreplaced placeholder $(grep -o '{{[A-Z0-9_]*}}' "$out" | head -1)"
  fi
}

# write_meta_start records the command and the machine facts; the report
# tool reads this key=value file.
write_meta_start() {
  META="$WORK/meta.env"
  {
    echo "command=$COMMAND_LINE"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "quick=$QUICK"
    echo "reps=$REPS"
    echo "lat_secs=$LAT_SECS"
    echo "sat_secs=$SAT_SECS"
    echo "warm_secs=$WARM_SECS"
    echo "pinned=$((${#PIN_PROXY[@]} > 0))"
    echo "clk_tck=$(getconf CLK_TCK)"
    echo "nproc=$(nproc)"
    echo "cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "kernel=$(uname -r)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "busy_before_pct=$(machine_busy_pct)"
    tool_versions
    echo "trellis_build_error=$TRELLIS_BUILD_ERROR"
    printf 'systems=%s\n' "${SYSTEMS[*]}"
    printf 'scenarios=%s\n' "${SCENARIOS[*]}"
  } >"$META"
  (IFS=$'\t' && echo "${RUNS_HEADER[*]}") >"$WORK/runs.tsv"
}

tool_versions() {
  echo "go=$(go version | awk '{print $3}')"
  echo "nginx=$(nginx -v 2>&1 | sed 's|.*nginx/||')"
  echo "haproxy=$(haproxy -v | awk 'NR==1 {print $3}')"
  echo "caddy=$(caddy version | awk '{print $1}')"
  echo "fortio=$("$FORTIO" version 2>&1 | head -1)"
  echo "wrk=$(wrk --version 2>&1 | awk 'NR==1 {print $2}')"
  echo "h2load=$(h2load --version | awk '{print $2}')"
  echo "openssl=$(openssl version | awk '{print $2}')"
  echo "trellis=$(trellis_revision)"
}

trellis_revision() {
  local rev
  rev=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null) || rev="no commit"
  if [[ -n $(git -C "$REPO_DIR" status --porcelain 2>/dev/null | head -1) ]]; then
    rev="$rev (dirty tree)"
  fi
  echo "$rev"
}

write_meta_end() {
  echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$META"
}

# write_report renders results/<stamp>.json and .md; a full (non --quick)
# run also rebuilds bench/RESULTS.md from every full run's JSON in
# results/, each scenario from the newest run that measured it.
write_report() {
  local stamp dir="$BENCH_DIR/results"
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  ((QUICK)) && stamp="$stamp-quick"
  mkdir -p "$dir"
  "$BIN/report" render -work "$WORK" -json "$dir/$stamp.json" -md "$dir/$stamp.md"
  if ((QUICK)); then
    log "quick run: bench/RESULTS.md left as is"
  else
    "$BIN/report" merge -dir "$dir" -md "$BENCH_DIR/RESULTS.md" ||
      die "bench/RESULTS.md not rebuilt (this run is in bench/results/$stamp.json)"
    log "wrote bench/RESULTS.md (each scenario from the newest full run in bench/results/)"
  fi
  log "wrote bench/results/$stamp.json and bench/results/$stamp.md"
  cat "$dir/$stamp.md"
}
