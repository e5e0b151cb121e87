# tests/realdrivers/lib.sh -- sourced by run-testpmd and run-linux: a scratch directory
# and one `viosim serve` at a time on $work/sock. The sourcing script sets viosim and work.
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

start_server() { # out_dir, then --set arguments; the log goes to out_dir.log
  local out=$1; shift
  rm -f "$work/sock"
  "$viosim" serve --vhost-user "$work/sock" --out "$out" "$@" >"$out.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 50); do [ -S "$work/sock" ] && return 0; sleep 0.1; done
  cat "$out.log" >&2
  fail "viosim serve did not create its socket"
}
stop_server() { # SIGINT: viosim writes stats.json and must exit 0
  kill -INT "$server_pid"
  wait "$server_pid" || fail "viosim serve exited with status $? on SIGINT"
  server_pid=""
}
