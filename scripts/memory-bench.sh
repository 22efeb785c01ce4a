#!/usr/bin/env bash
# Memory benchmark (README "Memory"): a 3-node raftkv group and one redis-server, same run.
#
#   scripts/memory-bench.sh [KEYS] [VALUE_SIZE]        (defaults: 1000000 100)
#
# 1. Starts 3 `raftkv server` processes on 127.0.0.1 (client ports BASE..BASE+2, BASE
#    defaults to 16379) and, if installed, `redis-server` on BASE+21 (no persistence).
# 2. `raftkv bench --load-keys KEYS` against the group, then against redis-server:
#    RSS per node, peak, used_memory, bytes per key.
# 3. Snapshot catch-up: kills one follower with -9, overwrites every key through the other
#    two (the leader compacts past what the follower holds; its anonymous RSS peak while it
#    does, sampled every 100 ms, is what taking snapshots costs), restarts it, and records the
#    leader's and that follower's peak RSS (VmHWM; the leader's reset first through
#    /proc/PID/clear_refs) until the follower applied the leader's commit index, and how
#    long it took; also their anonymous (heap) RSS peak, sampled every 100 ms (VmHWM
#    includes the reclaimable file pages of the memory-mapped snapshot files).
# 4. Recovery: kills all three with -9, restarts them, and times until `GET key:0` answers.
#
# Environment: RAFTKV (server binary, default target/release/raftkv), BENCH (the binary
# that runs `bench`, default RAFTKV: set it to measure an older server build), BASE (port), DIR (data,
# default a new temp dir, removed at the end unless KEEP=1), SERVER_FLAGS (extra
# `raftkv server` flags, e.g. "--snapshot-threshold-bytes 16777216").
# Needs redis-cli for the role and read probes. Figures are for reports, not assertions.
set -euo pipefail

KEYS=${1:-1000000}
VALUE_SIZE=${2:-100}
RAFTKV=${RAFTKV:-target/release/raftkv}
BENCH=${BENCH:-$RAFTKV}
BASE=${BASE:-16379}
DIR=${DIR:-$(mktemp -d -t raftkv-mem.XXXXXX)}
SERVER_FLAGS=${SERVER_FLAGS:-}
command -v redis-cli >/dev/null || { echo "memory-bench: redis-cli is needed" >&2; exit 1; }
# Ports this script binds (clients BASE.., peers BASE+10000.., redis BASE+21) must lie below the
# kernel's ephemeral range: a restarted node cannot bind a port some client socket holds.
read -r EPHEMERAL_LO _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || EPHEMERAL_LO=32768
if [ $((BASE + 10002)) -ge "$EPHEMERAL_LO" ]; then
    echo "memory-bench: BASE=$BASE puts peer ports in the ephemeral range (from $EPHEMERAL_LO); pick BASE <= $((EPHEMERAL_LO - 10003))" >&2
    exit 1
fi
[ -x "$RAFTKV" ] || { echo "memory-bench: no binary at $RAFTKV (cargo build --release -p raftkv)" >&2; exit 1; }

declare -A PID
REDIS_PID=
CLUSTER="1=127.0.0.1:$((BASE + 10000)),2=127.0.0.1:$((BASE + 10001)),3=127.0.0.1:$((BASE + 10002))"
ENDPOINTS="127.0.0.1:$BASE,127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2))"

cleanup() {
    for i in "${!PID[@]}"; do { kill -9 "${PID[$i]}"; wait "${PID[$i]}"; } 2>/dev/null || true; done
    if [ -n "$REDIS_PID" ]; then { kill -9 "$REDIS_PID"; wait "$REDIS_PID"; } 2>/dev/null || true; fi
    [ "${KEEP:-0}" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT

start() { # start node $1
    local i=$1
    # shellcheck disable=SC2086
    "$RAFTKV" server --id "$i" --cluster "$CLUSTER" --listen "127.0.0.1:$((BASE + i - 1))" \
        --data-dir "$DIR/node-$i" --log-level error $SERVER_FLAGS 2>>"$DIR/node-$i.log" &
    PID[$i]=$!
}
port() { echo $((BASE + $1 - 1)); }
info_field() { # node, field
    redis-cli -p "$(port "$1")" INFO raft 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"
}
role_of() { info_field "$1" role; }
keys_of() { redis-cli -p "$(port "$1")" INFO keyspace 2>/dev/null | tr -d '\r' | sed -n 's/^db0:keys=\([0-9]*\).*/\1/p'; }
kib() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status" 2>/dev/null; }
mib() { awk -v k="${1:-0}" 'BEGIN { printf "%.1f", k / 1024 }'; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
wait_for() { # seconds, command...: polls every 100 ms
    local limit=$1; shift
    local t0; t0=$(now)
    until "$@"; do
        if awk -v a="$t0" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }'; then
            echo "memory-bench: timed out after ${limit}s waiting for: $*" >&2; return 1
        fi
        sleep 0.1
    done
}
leader_known() { for i in 1 2 3; do [ "$(role_of "$i")" = leader ] && return 0; done; return 1; }
leader() { for i in 1 2 3; do [ "$(role_of "$i")" = leader ] && { echo "$i"; return; }; done; }
reads_served() { redis-cli -p "$(port "$1")" GET key:0 2>/dev/null | grep -q '^x'; }
holds_all() { [ "$(keys_of "$1")" = "$KEYS" ]; }

mkdir -p "$DIR"
echo "data: $DIR; binary: $RAFTKV; keys: $KEYS x $VALUE_SIZE B"
for i in 1 2 3; do start "$i"; done
wait_for 30 leader_known

echo "== load into raftkv"
"$BENCH" bench --endpoints "$ENDPOINTS" --load-keys "$KEYS" --value-size "$VALUE_SIZE"
if command -v redis-server >/dev/null; then
    redis-server --port $((BASE + 21)) --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no >"$DIR/redis.log" 2>&1 &
    REDIS_PID=$!
    wait_for 10 redis-cli -p $((BASE + 21)) PING >/dev/null 2>&1
    echo "== load into redis-server (same run)"
    "$BENCH" bench --endpoints "127.0.0.1:$((BASE + 21))" --load-keys "$KEYS" --value-size "$VALUE_SIZE"
    kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true; REDIS_PID=
fi
du -sh "$DIR"/node-? | sed 's/^/data dir: /'

echo "== snapshot catch-up of a follower that fell behind past a compaction"
# (Wiping a member's data dir and restarting it under the same id is not a Raft
# scenario: it forgets its vote and its acknowledged entries. A lagging member is.)
L=$(leader)
F=$(( L % 3 + 1 ))
O=$(( F % 3 + 1 )); [ "$O" = "$L" ] && O=$(( O % 3 + 1 ))
{ kill -9 "${PID[$F]}"; wait "${PID[$F]}"; } 2>/dev/null || true
echo "follower $F killed; overwriting every key through nodes $L and $O so the log passes the snapshot threshold"
echo "leader $L before overwriting: rss $(mib "$(kib "${PID[$L]}" VmRSS)") MiB, anonymous $(mib "$(kib "${PID[$L]}" RssAnon)") MiB, snapshot_index $(info_field "$L" snapshot_index)"
"$BENCH" bench --endpoints "127.0.0.1:$(port "$L"),127.0.0.1:$(port "$O")" --load-keys "$KEYS" \
    --value-size "$VALUE_SIZE" >/dev/null &
OVERWRITE=$!
# The leader compacts (takes snapshots) while it is overwritten: its anonymous (heap) RSS
# peak in this phase includes what taking a snapshot costs on top of the data.
ANON_PEAK_W=0 SNAPS_SEEN=0 LAST_SNAP=$(info_field "$L" snapshot_index)
while kill -0 "$OVERWRITE" 2>/dev/null; do
    a=$(kib "${PID[$L]}" RssAnon); [ "${a:-0}" -gt "$ANON_PEAK_W" ] && ANON_PEAK_W=$a
    s=$(info_field "$L" snapshot_index)
    if [ -n "$s" ] && [ "$s" != "$LAST_SNAP" ]; then SNAPS_SEEN=$((SNAPS_SEEN + 1)); LAST_SNAP=$s; fi
    sleep 0.1
done
wait "$OVERWRITE"
echo "leader $L while overwritten: anonymous (heap) peak $(mib "$ANON_PEAK_W") MiB, sampled every 100 ms; its snapshot_index moved $SNAPS_SEEN times, now $LAST_SNAP"
TARGET=$(info_field "$L" commit)
echo "leader $L: commit $TARGET, snapshot_index $(info_field "$L" snapshot_index)"
echo 5 >"/proc/${PID[$L]}/clear_refs" # resets the leader's VmHWM to its current RSS
echo "leader $L before: rss $(mib "$(kib "${PID[$L]}" VmRSS)") MiB"
# VmHWM counts file pages too (the snapshot files are read through memory maps, and
# those pages are clean and reclaimable); the heap's share is sampled as RssAnon.
ANON_PEAK_L=0 ANON_PEAK_F=0
sample_anon() {
    local a
    a=$(kib "${PID[$L]}" RssAnon); [ "${a:-0}" -gt "$ANON_PEAK_L" ] && ANON_PEAK_L=$a
    a=$(kib "${PID[$F]}" RssAnon); [ "${a:-0}" -gt "$ANON_PEAK_F" ] && ANON_PEAK_F=$a
    return 0
}
caught_up() { sample_anon; [ "$(info_field "$F" applied)" -ge "$TARGET" ] 2>/dev/null; }
t0=$(now)
start "$F"
wait_for 600 caught_up
echo "follower $F applied $TARGET (snapshot_index $(info_field "$F" snapshot_index)) $(since "$t0") s after its restart"
echo "leader $L peak during catch-up: $(mib "$(kib "${PID[$L]}" VmHWM)") MiB, now $(mib "$(kib "${PID[$L]}" VmRSS)") MiB"
echo "follower $F peak since its restart: $(mib "$(kib "${PID[$F]}" VmHWM)") MiB, now $(mib "$(kib "${PID[$F]}" VmRSS)") MiB"
echo "anonymous (heap) peak, sampled every 100 ms: leader $(mib "$ANON_PEAK_L") MiB, follower $(mib "$ANON_PEAK_F") MiB"

echo "== recovery after kill -9 of all three"
for i in 1 2 3; do { kill -9 "${PID[$i]}"; wait "${PID[$i]}"; } 2>/dev/null || true; done
t0=$(now)
for i in 1 2 3; do start "$i"; done
wait_for 600 leader_known
L=$(leader)
wait_for 600 reads_served "$L"
echo "cluster serves reads (GET key:0 on the leader, node $L) $(since "$t0") s after restart"
for i in 1 2 3; do wait_for 600 holds_all "$i"; done
echo "every node holds all keys $(since "$t0") s after restart"
for i in 1 2 3; do
    echo "node $i after recovery: rss $(mib "$(kib "${PID[$i]}" VmRSS)") MiB, peak $(mib "$(kib "${PID[$i]}" VmHWM)") MiB"
done
