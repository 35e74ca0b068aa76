#!/usr/bin/env bash
# Fuzzes every target in turn, one process at a time: RUNS executions each (default 1,000,000),
# at most SECS seconds each (default 600). New inputs go to corpus/<target>/ (git-ignored); the
# committed seeds in seeds/<target>/ are read too. Works on stable Rust via RUSTC_BOOTSTRAP=1.
# Usage: fuzz/run-all.sh [target...]
set -euo pipefail
cd "$(dirname "$0")"
RUNS=${RUNS:-1000000}
SECS=${SECS:-600}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(bencode torrent magnet wire_frames wire_extensions tracker_query tracker_response resume engine_peer krpc mse_responder udp_tracker_request udp_tracker_response)
fi
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t"
    RUSTC_BOOTSTRAP=1 cargo fuzz run -a "$t" "corpus/$t" "seeds/$t" -- \
        -runs="$RUNS" -max_total_time="$SECS" -print_final_stats=1 >"logs/$t.log" 2>&1 || {
        echo "$t: FAILED (see fuzz/logs/$t.log and fuzz/artifacts/$t/)"
        continue
    }
    grep -E "^(stat::number_of_executed_units|stat::average_exec_per_sec|Done)" "logs/$t.log" || true
done
