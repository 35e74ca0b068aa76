#!/usr/bin/env bash
# Scale: (1) one seeder with N busy peer connections on one torrent (bench/load_peer.py opens
# them, each from its own 127.0.0.x address, and keeps requesting blocks): the seeder's RSS,
# peak RSS and CPU over the window, for each N; (2) K torrents seeded by one `swarm seed`
# process: RSS and idle CPU (no peers) over a window, for each K. RSS and CPU come from
# /proc/<pid>/{status,stat}.
#
# Usage: bench/scale.sh
#   CONNS="50 100 200"     connection counts          SECONDS_BUSY=20  window with peers
#   TORRENTS="250 500 1000" torrent counts            SECONDS_IDLE=30  idle window
#   SEEDERS="ours lt"      seeders for (1) (lt: libtorrent through tests/peers/lt_peer.py)
#   SIZE_MIB=64            size of the torrent in (1)
#   WORK, OUT, NO_BUILD, KEEP as in one_stream.sh; OUT gets "conns-KIND-N rss_kib hwm_kib
#   cpu_pct open" and "torrents-K rss_kib cpu_pct" lines.
set -euo pipefail

CONNS=${CONNS:-"50 100 200"}
TORRENTS=${TORRENTS:-"250 500 1000"}
SECONDS_BUSY=${SECONDS_BUSY:-20}
SECONDS_IDLE=${SECONDS_IDLE:-30}
SIZE_MIB=${SIZE_MIB:-64}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
have libtorrent || { echo "missing: python3-libtorrent" >&2; exit 1; }
SEEDERS=${SEEDERS:-"ours lt"}

build_release
make_work scale
DATA="$WORK/seed/data.bin"
random_file "$DATA" "$SIZE_MIB"
LOG="$WORK/tracker.log"
TRACKER_PORT=$(free_port)
spawn "$TRACKER" --listen "127.0.0.1:$TRACKER_PORT"
ANNOUNCE="http://127.0.0.1:$TRACKER_PORT/announce"
TORRENT="$WORK/data.torrent"
"$SWARM" create "$DATA" --piece-size 256K -t "$ANNOUNCE" -o "$TORRENT" -f >/dev/null
INFO=$("$PYTHON" "$LT_PEER" info "$TORRENT")
field() { awk -v k="$1" '$1 == k { print $2 }' <<<"$INFO"; }

# CPU percent of one core used by process $1 over $2 seconds.
cpu_pct() {
    local pid=$1 secs=$2 c0 c1
    c0=$(cpu_seconds "$pid")
    sleep "$secs"
    c1=$(cpu_seconds "$pid")
    echo "scale=2; 100 * ($c1 - $c0) / $secs" | bc
}

printf '\nconnections: one seeder, %s MiB torrent, N peers requesting blocks for %s s (load average %s)\n' \
    "$SIZE_MIB" "$SECONDS_BUSY" "$(load1)"
printf '| seeder | N asked | N handshaken | RSS MiB at end | peak RSS MiB | CPU %% of a core | MiB served |\n'
printf '|---|---|---|---|---|---|---|\n'
for kind in $SEEDERS; do
    for n in $CONNS; do
        port=$(free_port)
        LOG="$WORK/seed-$kind-$n.log"
        case $kind in
        ours)
            # --no-super-seed: the load peers ask for random blocks of any piece and read no
            # HAVEs, which a super-seed (the default) refuses for pieces it has not shown them.
            spawn "$SWARM" seed "$TORRENT" --data "$DATA" --listen "127.0.0.1:$port" \
                --max-peers $((n + 50)) --no-super-seed
            wait_line "listening on port" 120 "$LOG"
            ;;
        lt)
            spawn "$PYTHON" "$LT_PEER" seed "$TORRENT" "$WORK/seed" --port "$port" --timeout 3600
            wait_line "^seeding" 120 "$LOG"
            ;;
        esac
        seeder=$SPAWNED
        LOG="$WORK/load-$kind-$n.log"
        spawn "$PYTHON" "$LOAD_PEER" "127.0.0.1:$port" "$(field info_hash)" "$(field pieces)" \
            "$(field piece_length)" "$(field total_size)" -n "$n" --seconds "$SECONDS_BUSY"
        load=$SPAWNED
        sleep 2
        cpu=$(cpu_pct "$seeder" $((SECONDS_BUSY - 4)))
        rss=$(proc_kib "$seeder" VmRSS)
        hwm=$(proc_kib "$seeder" VmHWM)
        wait "$load" || true
        stop "$seeder"
        read -r _ open _ shaken _ bytes <"$LOG"
        [[ -n ${OUT:-} ]] && echo "conns-$kind-$n $rss $hwm $cpu $shaken" >>"$OUT"
        awk -v k="$kind" -v n="$n" -v s="$shaken" -v r="$rss" -v h="$hwm" -v c="$cpu" -v b="$bytes" \
            'BEGIN { printf "| %s | %d | %d | %.1f | %.1f | %.1f | %.0f |\n",
                     k == "ours" ? "swarm" : "libtorrent", n, s, r / 1024, h / 1024, c, b / 1048576 }'
    done
done

printf '\ntorrents: K small torrents (one 64 KiB file each) in one `swarm seed` process (stdout to a file), no peers, idle for %s s after start-up (load average %s)\n' \
    "$SECONDS_IDLE" "$(load1)"
printf '| K | RSS MiB | RSS KiB per torrent above K=0 | idle CPU %% of a core | start-up s |\n|---|---|---|---|---|\n'
LOG="$WORK/seed-empty.log"
mkdir -p "$WORK/many"
head -c 65536 /dev/urandom >"$WORK/many/base"
spawn "$SWARM" seed "$WORK/many/base" --tracker "$ANNOUNCE" --listen "127.0.0.1:$(free_port)"
wait_line "listening on port" 60 "$LOG"
sleep 3
base_rss=$(proc_kib "$SPAWNED" VmRSS)
stop "$SPAWNED"
for k in $TORRENTS; do
    dir="$WORK/many/$k"
    mkdir -p "$dir"
    paths=()
    for ((i = 0; i < k; i++)); do
        f=$(printf '%s/t%05d' "$dir" "$i")
        # Distinct contents, so every torrent has its own info-hash.
        { printf '%08d' "$i"; head -c 65528 "$WORK/many/base"; } >"$f"
        paths+=("$f")
    done
    LOG="$WORK/seed-many-$k.log"
    t0=$(date +%s.%N)
    spawn "$SWARM" seed "${paths[@]}" --tracker "$ANNOUNCE" --listen "127.0.0.1:$(free_port)"
    pid=$SPAWNED
    wait_line "listening on port" 600 "$LOG"
    startup=$(echo "$(date +%s.%N) - $t0" | bc)
    sleep 5
    cpu=$(cpu_pct "$pid" "$SECONDS_IDLE")
    rss=$(proc_kib "$pid" VmRSS)
    stop "$pid"
    [[ -n ${OUT:-} ]] && echo "torrents-$k $rss $cpu" >>"$OUT"
    awk -v k="$k" -v r="$rss" -v b="$base_rss" -v c="$cpu" -v s="$startup" \
        'BEGIN { printf "| %d | %.1f | %.1f | %.2f | %.1f |\n", k, r / 1024, (r - b) / k, c, s }'
done
