# shellcheck shell=bash
# Process control and /proc accounting for bench/run.sh. Every process is
# started by spawn, remembered by PID, and stopped by PID (stop_pid and, on
# any exit, cleanup).

ALL_PIDS=()

# spawn LOG CMD... starts CMD in the background with stdout and stderr in
# LOG and sets SPAWNED to its PID. Prefixes such as env and taskset exec the
# real program, so the PID is the program's.
spawn() {
  local log=$1
  shift
  "$@" >"$log" 2>&1 &
  SPAWNED=$!
  ALL_PIDS+=("$SPAWNED")
}

# run_waited LOG CMD... runs CMD like spawn but waits for it and returns
# its status. Waiting on a background job (not a foreground command) lets
# the INT/TERM traps run at once, and cleanup then stops CMD by PID.
run_waited() {
  local rc=0
  spawn "$@"
  wait "$SPAWNED" || rc=$?
  forget_pid "$SPAWNED"
  return "$rc"
}

# forget_pid PID drops a stopped and reaped PID from ALL_PIDS, so that
# cleanup never signals a later process that reuses the number.
forget_pid() {
  local -a keep=()
  local p
  for p in "${ALL_PIDS[@]}"; do
    if [[ $p != "$1" ]]; then keep+=("$p"); fi
  done
  ALL_PIDS=("${keep[@]}")
}

# alive PID succeeds while PID runs (a zombie counts as gone).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat:0:1} != Z ]]
}

# proc_tree PID prints PID and all its descendants.
proc_tree() {
  local pid=$1 child f
  echo "$pid"
  for f in /proc/"$pid"/task/*/children; do
    [[ -r $f ]] || continue
    for child in $(<"$f"); do proc_tree "$child"; done
  done
}

# stop_pid PID sends SIGTERM to PID, waits up to 5 s, then SIGKILLs PID and
# any descendant still running (nginx workers outlive a killed master).
stop_pid() {
  local pid=$1 i p
  local -a tree
  if ! alive "$pid"; then
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
    return 0
  fi
  mapfile -t tree < <(proc_tree "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  for p in "${tree[@]}"; do
    if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}

# cleanup runs on every exit: stops what is still running, removes the
# temporary apt policy and the work directory (unless --keep).
cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${ALL_PIDS[@]}"; do stop_pid "$pid"; done
  ALL_PIDS=()
  remove_policy_rc
  if [[ -n ${WORK:-} && -d $WORK ]]; then
    if ((KEEP || rc != 0)); then
      log "work directory kept: $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$rc"
}

# cpu_ticks PID... prints utime+stime (clock ticks) summed over the PIDs
# and their descendants.
cpu_ticks() {
  local sum=0 pid stat
  local -a f
  for pid in $(for p in "$@"; do proc_tree "$p"; done); do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    read -r -a f <<<"${stat##*) }"
    # Fields 14 and 15 of proc(5); f[0] is field 3 (state).
    sum=$((sum + f[11] + f[12]))
  done
  echo "$sum"
}

# status_kb FIELD PID... prints a /proc/PID/status field (VmRSS, VmHWM) in
# KiB summed over the PIDs and their descendants.
status_kb() {
  local field=$1 sum=0 pid kb
  shift
  for pid in $(for p in "$@"; do proc_tree "$p"; done); do
    kb=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$pid/status" 2>/dev/null)
    sum=$((sum + ${kb:-0}))
  done
  echo "$sum"
}

# port_open PORT succeeds when something accepts on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# log_tail FILE prints the last lines of a process log on one line.
log_tail() {
  tail -n 5 "$1" 2>/dev/null | one_line
}

# core_busy_ticks CPU prints the busy time of one core (user, nice, system,
# irq, softirq, steal) from /proc/stat, in clock ticks.
core_busy_ticks() {
  awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# machine_busy_pct prints how busy all cores were over one second.
machine_busy_pct() {
  local a b
  read -r -a a < <(grep '^cpu ' /proc/stat)
  sleep 1
  read -r -a b < <(grep '^cpu ' /proc/stat)
  local busy=$(((b[1] + b[2] + b[3] + b[6] + b[7] + b[8]) - (a[1] + a[2] + a[3] + a[6] + a[7] + a[8])))
  local idle=$(((b[4] + b[5]) - (a[4] + a[5])))
  echo $((100 * busy / (busy + idle + 1)))
}
