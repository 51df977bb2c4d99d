# shellcheck shell=bash
# Scenarios and one measured run. A scenario is lat-h1 / lat-h2 / lat-grpc
# (fortio at a fixed 1000 qps, 16 connections; lat-grpc runs the systems'
# gRPC configs against the fortio gRPC backend) or sat-h1 (wrk) / sat-h2
# (h2load): saturation with the proxy alone on CORE_PROXY.

declare -A BROKEN=()

# RUNS_HEADER names the columns of runs.tsv, which bench/report reads.
readonly RUNS_HEADER=(rep scenario system status tool output cpu_ticks rss_idle_kb
  rss_peak_kb core_busy_ticks wall_ms error)

# scenario_tool SCENARIO prints the load generator of SCENARIO.
scenario_tool() {
  case $1 in
    lat-*) echo fortio ;;
    sat-h1) echo wrk ;;
    sat-h2) echo h2load ;;
  esac
}

scenario_proto() { echo "${1#*-}"; }

# scenario_variant SCENARIO prints which configs the systems run: empty
# (HTTP) or grpc.
scenario_variant() {
  [[ $1 == lat-grpc ]] && echo grpc
  return 0
}

# load SCENARIO URL SECS OUT runs the load generator on the load core,
# bounded in time, its report in OUT.
load() {
  local scenario=$1 u=$2 secs=$3 out=$4
  local -a bound=(timeout -k 5 $((secs + 30)))
  case $scenario in
    lat-h1 | lat-h2)
      local -a h2=()
      [[ $scenario == lat-h2 ]] && h2=(-h2)
      run_waited "$out.log" "${bound[@]}" "${PIN_LOAD[@]}" "$FORTIO" load "${h2[@]}" -qps 1000 -c 16 \
        -t "${secs}s" -r 0.00001 -p "50,90,99,99.9" -quiet -json "$out" "$u"
      ;;
    lat-grpc)
      # Unary Ping calls carrying a 1 KiB payload, which the server echoes;
      # -s 1: one call in flight per connection, 16 connections, as in
      # lat-h1 and lat-h2.
      run_waited "$out.log" "${bound[@]}" "${PIN_LOAD[@]}" "$FORTIO" load -grpc -ping -s 1 -payload "$BODY_1KIB" \
        -qps 1000 -c 16 -t "${secs}s" -r 0.00001 -p "50,90,99,99.9" -quiet -json "$out" "$u"
      ;;
    sat-h1)
      run_waited "$out" "${bound[@]}" "${PIN_LOAD[@]}" wrk -t1 -c64 -d"${secs}s" --timeout 5s \
        -s "$BENCH_DIR/configs/wrk-report.lua" "$u"
      ;;
    sat-h2)
      run_waited "$out" "${bound[@]}" "${PIN_LOAD[@]}" h2load -t1 -c16 -m4 -D "$secs" "$u"
      ;;
  esac
}

# run_one REP SCENARIO SYSTEM starts SYSTEM afresh, checks it, warms it up,
# measures one load run with CPU and RSS accounting, stops it and records
# one line in runs.tsv. A system that failed to start is skipped for the
# rest of the invocation (with the same configs: a failed gRPC config does
# not skip the HTTP scenarios); failures never abort the matrix.
run_one() {
  local rep=$1 scenario=$2 sys=$3
  local tool proto out variant key
  tool=$(scenario_tool "$scenario")
  proto=$(scenario_proto "$scenario")
  variant=$(scenario_variant "$scenario")
  key=$sys${variant:+/$variant}
  out="$WORK/out/$rep-$scenario-$sys.$tool"
  mkdir -p "$WORK/out"
  if [[ -n ${BROKEN[$sys]:-} || -n ${BROKEN[$key]:-} ]]; then
    record "$rep" "$scenario" "$sys" skipped "$tool" "" "" "" "" "" "" "${BROKEN[$sys]:-${BROKEN[$key]}}"
    return 0
  fi
  ensure_backend
  log "rep $rep/$REPS  $scenario  $sys"
  if ! system_start "$sys" "$variant"; then
    BROKEN[$key]=$START_ERROR
    warn "$START_ERROR"
    record "$rep" "$scenario" "$sys" failed "$tool" "" "" "" "" "" "" "$START_ERROR"
    return 0
  fi
  measure "$rep" "$scenario" "$sys" "$tool" "$proto" "$out"
  system_stop
}

# measure runs the sanity check, warm-up and measured load of one run.
# Besides the proxies' own CPU time it records the busy time of the whole
# proxy core and the wall time, so that the report can tell how much of the
# core other processes took during the run.
measure() {
  local rep=$1 scenario=$2 sys=$3 tool=$4 proto=$5 out=$6
  local idle="" peak="" ticks="" t0 t1 b0 b1 w0 w1 u rc=0 secs=$SAT_SECS
  [[ $scenario == lat-* ]] && secs=$LAT_SECS
  u=$(url "$sys" "$proto")
  ((${#SYS_PIDS[@]})) && idle=$(status_kb VmRSS "${SYS_PIDS[@]}")
  if ! sanity "$sys" "$proto"; then
    warn "$sys: $SANITY_ERROR"
    record "$rep" "$scenario" "$sys" failed "$tool" "" "" "$idle" "" "" "" "$SANITY_ERROR"
    return 0
  fi
  load "$scenario" "$u" "$WARM_SECS" "$out.warm" || true
  t0=$(cpu_ticks "${SYS_PIDS[@]}") b0=$(core_busy_ticks "$CORE_PROXY") w0=$(now_ms)
  load "$scenario" "$u" "$secs" "$out" || rc=$?
  t1=$(cpu_ticks "${SYS_PIDS[@]}") b1=$(core_busy_ticks "$CORE_PROXY") w1=$(now_ms)
  if ((${#SYS_PIDS[@]})); then
    ticks=$((t1 - t0))
    peak=$(status_kb VmHWM "${SYS_PIDS[@]}")
  fi
  local -a acct=("${out#"$WORK"/}" "$ticks" "$idle" "$peak" $((b1 - b0)) $((w1 - w0)))
  if ((rc != 0)); then
    record "$rep" "$scenario" "$sys" failed "$tool" "${acct[@]}" \
      "$tool exited $rc: $(tail -n 3 "$out"* 2>/dev/null | one_line)"
    return 0
  fi
  record "$rep" "$scenario" "$sys" ok "$tool" "${acct[@]}" ""
}

# record appends one run to runs.tsv (columns: see RUNS_HEADER).
record() {
  local -a f=("$@")
  f[11]=$(printf '%s' "${f[11]}" | one_line)
  local IFS=$'\t'
  echo "${f[*]}" >>"$WORK/runs.tsv"
}
