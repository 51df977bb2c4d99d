# shellcheck shell=bash
# Logging, argument parsing and the run-wide settings of bench/run.sh.

readonly FORTIO_VERSION=1.68.2
readonly ALL_SYSTEMS=(direct nginx-hop haproxy-hop caddy-hop trellis-hop
  nginx-pair haproxy-pair caddy-pair trellis-pair)
readonly ALL_SCENARIOS=(lat-h1 lat-h2 lat-grpc sat-h1 sat-h2)

# Cores: the proxies under test run on CORE_PROXY, the load generator and
# the backend on CORE_LOAD.
readonly CORE_PROXY=0 CORE_LOAD=1

# Settings (parse_args sets them).
REPS=3
QUICK=0
KEEP=0
INSTALL=1
LAT_SECS=30 SAT_SECS=10 WARM_SECS=2
SYSTEMS=("${ALL_SYSTEMS[@]}")
SCENARIOS=("${ALL_SCENARIOS[@]}")

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
warn() { log "WARNING: $*"; }
die() {
  log "ERROR: $*"
  exit 1
}

usage() {
  cat <<'USAGE'
usage: bash bench/run.sh [options]

  --quick            1 repetition, 5 s latency and 3 s saturation runs
                     (development only; does not touch bench/RESULTS.md)
  --reps N           repetitions of the whole matrix (default 3)
  --only LIST        comma-separated systems; "nginx" selects nginx-hop and
                     nginx-pair. Systems: direct nginx-hop haproxy-hop
                     caddy-hop trellis-hop nginx-pair haproxy-pair caddy-pair
                     trellis-pair. direct is always included (the baseline).
  --scenarios LIST   comma-separated: lat-h1 lat-h2 lat-grpc sat-h1 sat-h2
                     (default all)
  --keep             keep the work directory (configs, logs, raw outputs)
  --no-install       skip apt-get and go install (tools must be present)
USAGE
}

parse_args() {
  while (($#)); do
    case $1 in
      --quick) QUICK=1 ;;
      --reps) REPS=${2:?--reps needs a number}; shift ;;
      --only) select_systems "${2:?--only needs a list}"; shift ;;
      --scenarios) select_scenarios "${2:?--scenarios needs a list}"; shift ;;
      --keep) KEEP=1 ;;
      --no-install) INSTALL=0 ;;
      -h | --help) usage; exit 0 ;;
      *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
  done
  [[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps: want a positive integer, got $REPS"
  if ((QUICK)); then
    REPS=1 LAT_SECS=5 SAT_SECS=3 WARM_SECS=1
  fi
}

# select_systems keeps the systems named in a comma list, in the canonical
# order; a bare implementation name ("nginx") selects its hop and its pair.
select_systems() {
  local -a want
  local sys w
  IFS=, read -r -a want <<<"$1"
  for w in "${want[@]}"; do
    in_list "$w" "${ALL_SYSTEMS[@]}" || in_list "$w-hop" "${ALL_SYSTEMS[@]}" ||
      die "--only: unknown system $w"
  done
  SYSTEMS=()
  for sys in "${ALL_SYSTEMS[@]}"; do
    if [[ $sys == direct ]] || in_list "$sys" "${want[@]}" || in_list "${sys%-*}" "${want[@]}"; then
      SYSTEMS+=("$sys")
    fi
  done
}

select_scenarios() {
  local -a want
  local s
  IFS=, read -r -a want <<<"$1"
  for s in "${want[@]}"; do
    in_list "$s" "${ALL_SCENARIOS[@]}" || die "--scenarios: unknown scenario $s"
  done
  SCENARIOS=()
  for s in "${ALL_SCENARIOS[@]}"; do
    if in_list "$s" "${want[@]}"; then SCENARIOS+=("$s"); fi
  done
}

# in_list WORD ITEM... succeeds when WORD is one of the items.
in_list() {
  local w=$1 x
  shift
  for x in "$@"; do [[ $x == "$w" ]] && return 0; done
  return 1
}

# one_line squeezes text (an error, a log tail) into one TSV-safe line.
one_line() {
  tr '\t\n\r' '   ' | tr -s ' ' | cut -c1-600
}
