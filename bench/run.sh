#!/usr/bin/env bash
# Trellis benchmark harness: direct vs nginx, HAProxy, Caddy and Trellis,
# as a single hop and as a mutual-TLS sidecar pair. See bench/README.md.
#
#   bash bench/run.sh [--quick] [--reps N] [--only LIST] [--scenarios LIST]
#                     [--keep] [--no-install]
#
# All traffic stays on 127.0.0.1. Every process this script starts is
# stopped by PID when it ends, also on failure and Ctrl-C.
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
# shellcheck source=lib/systems.sh
source "$BENCH_DIR/lib/systems.sh"
# shellcheck source=lib/scenarios.sh
source "$BENCH_DIR/lib/scenarios.sh"

main() {
  COMMAND_LINE="bash bench/run.sh${*:+ $*}"
  parse_args "$@"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/trellis-bench.XXXXXX")
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  setup_machine
  build_tools
  make_certs "$WORK/certs"
  allocate_ports
  render_configs
  write_meta_start
  start_backend
  run_matrix
  write_meta_end
  write_report
}

# run_matrix runs every selected scenario for every selected system,
# interleaving systems inside each repetition (A B C D, A B C D, ...).
run_matrix() {
  local rep scenario system
  for ((rep = 1; rep <= REPS; rep++)); do
    for scenario in "${SCENARIOS[@]}"; do
      for system in "${SYSTEMS[@]}"; do
        run_one "$rep" "$scenario" "$system"
      done
    done
  done
}

main "$@"
