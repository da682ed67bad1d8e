#!/usr/bin/env bash
# Seedlog real-client check with kcat (Debian's package, built on Debian's librdkafka).
#
# kcat has no admin API: the topic (1 partition) must exist already; the Rust harness creates it
# with `seedlog topics create`. The check produces keyed records with acks=all, consumes them from
# the beginning of partition 0 (assigned, no group), checks order and content, queries offsets
# (earliest, latest, by timestamp) and lists the cluster's metadata. It prints one PASS line or a
# FAIL line with a diff, exits 0, 1 (a mismatch) or 2 (a command timed out); every kcat call is
# bounded by `timeout`, so the whole check ends within about a minute.
#
#   tests/clients/kcat_check.sh --bootstrap 127.0.0.1:9092 --topic t1 [--records N]
set -uo pipefail
KCAT="${KCAT:-kcat}"

bootstrap=""
topic=""
records=500
while [ $# -gt 0 ]; do
    case "$1" in
        --bootstrap) bootstrap="$2"; shift 2 ;;
        --topic) topic="$2"; shift 2 ;;
        --records) records="$2"; shift 2 ;;
        *) echo "kcat_check.sh: unknown argument $1" >&2
           echo "usage: kcat_check.sh --bootstrap HOST:PORT --topic NAME [--records N]" >&2
           exit 64 ;;
    esac
done
if [ -z "$bootstrap" ] || [ -z "$topic" ]; then
    echo "usage: kcat_check.sh --bootstrap HOST:PORT --topic NAME [--records N]" >&2
    exit 64
fi

version="$("$KCAT" -V 2>/dev/null | sed -n 's/^Version \([^ ]*\).*/\1/p' | head -1)"
librdkafka="$("$KCAT" -V 2>/dev/null | sed -n 's/.*librdkafka \([0-9][^ ]*\).*/\1/p' | head -1)"
client="kcat ${version:-?} (librdkafka ${librdkafka:-?})"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
step="start"
notes=()
started=$SECONDS

at() { step="$1"; echo "  .. $1" >&2; }
fail() {
    echo "FAIL $client: step '$step': $1"
    if [ $# -gt 1 ] && [ -s "$2" ]; then head -n 20 "$2" | awk '{ print "    " $0 }'; fi
    exit 1
}
# kc SECONDS ARGS...: kcat with a hard time limit; a timeout is a FAIL with exit code 2.
kc() {
    local limit="$1"; shift
    timeout --kill-after=2 "$limit" "$KCAT" -b "$bootstrap" -m 10 "$@"
    local rc=$?
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        echo "FAIL $client: step '$step': kcat $* timed out after ${limit}s"
        exit 2
    fi
    return "$rc"
}

# The expected records: key<TAB>value, the same keys and values as tests/clients/common.py.
expected_kv() {
    local i
    for ((i = 0; i < records; i++)); do
        printf 'k%06d\tvalue-%06d-%s\n' "$i" "$i" "$(printf '%*s' $((i % 37)) '' | tr ' ' x)"
    done
}

at "wait for a leader"
leader=""
for _ in $(seq 1 40); do
    if kc 10 -L -t "$topic" -J >"$work/md.json" 2>"$work/md.err"; then
        leader="$(python3 - "$work/md.json" "$topic" <<'PY'
import json, sys
md = json.load(open(sys.argv[1]))
for t in md.get("topics", []):
    if t["topic"] == sys.argv[2] and not t.get("error"):
        for p in t["partitions"]:
            if p["partition"] == 0 and p.get("leader", -1) >= 0:
                print(p["leader"])
PY
)"
        [ -n "$leader" ] && break
    fi
    sleep 0.5
done
[ -n "$leader" ] || fail "no leader for partition 0 of '$topic' (does the topic exist?)" "$work/md.json"

at "produce"
expected_kv >"$work/want.kv"
half=$((records / 2))
# Two runs of the producer, so the log holds at least two batches.
head -n "$half" "$work/want.kv" >"$work/part1"
tail -n +"$((half + 1))" "$work/want.kv" >"$work/part2"
for part in part1 part2; do
    kc 40 -P -t "$topic" -p 0 -K $'\t' -H src=kcat -H "topic=$topic" \
        -X acks=all -X enable.idempotence=false -X max.in.flight.requests.per.connection=1 \
        -X message.timeout.ms=30000 -l "$work/$part" 2>"$work/produce.err"
    rc=$?
    if [ "$rc" -ne 0 ] || grep -qi "fail\|error" "$work/produce.err"; then
        uniq -c "$work/produce.err" >"$work/produce.uniq"
        fail "kcat -P exited $rc (repeated lines counted)" "$work/produce.uniq"
    fi
done
notes+=("produced $records records acks=all")

at "consume from the beginning (assigned partition)"
kc 30 -C -t "$topic" -p 0 -o beginning -e -q -f '%o\t%k\t%s\t%h\t%T\n' >"$work/got.tsv" 2>"$work/consume.err" \
    || fail "kcat -C exited $?" "$work/consume.err"
awk -v topic="$topic" 'BEGIN { FS = OFS = "\t" } { print NR - 1, $1, $2, "src=kcat,topic=" topic }' \
    "$work/want.kv" >"$work/want.tsv"
cut -f 1-4 "$work/got.tsv" >"$work/got4.tsv"
if ! diff -u "$work/want.tsv" "$work/got4.tsv" >"$work/diff" 2>&1; then
    fail "consumed $(wc -l <"$work/got.tsv") records, want $records equal to those produced (diff want got)" "$work/diff"
fi
notes+=("consumed $records in order with keys, values, headers")

at "query offsets"
kc 15 -Q -t "$topic:0:-2" >"$work/earliest" 2>"$work/q.err" || fail "kcat -Q earliest exited $?" "$work/q.err"
kc 15 -Q -t "$topic:0:-1" >"$work/latest" 2>"$work/q.err" || fail "kcat -Q latest exited $?" "$work/q.err"
earliest="$(sed -n 's/.* offset \(-\{0,1\}[0-9]*\).*/\1/p' "$work/earliest")"
latest="$(sed -n 's/.* offset \(-\{0,1\}[0-9]*\).*/\1/p' "$work/latest")"
[ "$earliest" = "0" ] || fail "earliest offset: got '$earliest', want 0" "$work/earliest"
[ "$latest" = "$records" ] || fail "latest offset: got '$latest', want $records" "$work/latest"
# By timestamp: the first offset whose timestamp is >= the target (Kafka's rule), computed from
# the timestamps the consumer saw (kcat's producer stamps records itself, CreateTime). The target
# is the timestamp of the first record of the second producer run, which started after the first
# had ended; a target after every record must find none (-1).
target="$(awk -F '\t' -v k="$half" 'NR == k + 1 { print $5 }' "$work/got.tsv")"
after="$(awk -F '\t' 'BEGIN { m = 0 } $5 > m { m = $5 } END { printf "%.0f\n", m + 60000 }' "$work/got.tsv")"
for ts in "$target" "$after"; do
    want_ts="$(awk -F '\t' -v t="$ts" '$5 + 0 >= t + 0 { print $1; found = 1; exit } END { if (!found) print -1 }' "$work/got.tsv")"
    kc 15 -Q -t "$topic:0:$ts" >"$work/bytime" 2>"$work/q.err" || fail "kcat -Q by timestamp exited $?" "$work/q.err"
    got_ts="$(sed -n 's/.* offset \(-\{0,1\}[0-9]*\).*/\1/p' "$work/bytime")"
    [ "$got_ts" = "$want_ts" ] || fail "offset for timestamp $ts: got '$got_ts', want $want_ts" "$work/bytime"
done
notes+=("offsets earliest 0, latest $records, by timestamp ok")

at "list cluster metadata"
kc 15 -L -J >"$work/cluster.json" 2>"$work/l.err" || fail "kcat -L exited $?" "$work/l.err"
if ! python3 - "$work/cluster.json" "$bootstrap" "$leader" >"$work/cluster.txt" <<'PY'
import json, sys
md = json.load(open(sys.argv[1]))
names = {b["name"]: b["id"] for b in md.get("brokers", [])}
if sys.argv[2] not in names:
    sys.exit(f"bootstrap {sys.argv[2]} is not among the brokers {sorted(names)}")
if int(sys.argv[3]) not in names.values():
    sys.exit(f"leader {sys.argv[3]} of partition 0 is not a listed broker {names}")
print(len(names))
PY
then
    fail "metadata" "$work/cluster.txt"
fi
notes+=("$(cat "$work/cluster.txt") broker(s) listed")

summary="$(printf '%s; ' "${notes[@]}")"
echo "PASS $client: ${summary%; } ($((SECONDS - started))s)"
