#!/bin/sh
# walrust demo (make demo): a primary database that a writer keeps changing,
# published to a local file store, followed by a read replica.
#
#   1. primary.db (WAL mode); a writer inserts rows every 100ms;
#      `walrust publish --interval 200ms` publishes it to store/.
#   2. `walrust replicate --interval 200ms` follows the store into replica.db
#      in the background, until the end.
#   3. Readers of replica.db meanwhile: a plain sqlite3 (read-only), the
#      walrust extension in the sqlite3 shell (queries a second apart show
#      the rows arriving; it reads what replicate applies, since only one
#      process follows a replica), and walrust-shell.
#   4. The writer stops; the replica must reach the primary's last TXID with
#      the same rows; replicate stops; a summary ends the demo.
#
# Needs only the sqlite3 shell and the binaries `make` builds; no S3.
# Exits 0 when the replica caught up, 1 otherwise. Environment:
#   WALRUST_BUILD  where the binaries are (default: build)
#   WALRUST, WALRUST_EXT, WALRUST_SHELL   each binary, to override one
#   DEMO_KEEP=1    keep the temporary directory
#   DEMO_CATCHUP_TRIES  how many times to look for the last TXID (default 30,
#                  about 15 s)
set -eu

build=${WALRUST_BUILD:-build}
abs() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd)" "$(basename "$1")"); }
walrust=$(abs "${WALRUST:-$build/walrust}")
ext=$(abs "${WALRUST_EXT:-$build/walrust.so}")
wshell=$(abs "${WALRUST_SHELL:-$build/walrust-shell}")
for f in "$walrust" "$ext" "$wshell"; do
	[ -f "$f" ] || { echo "demo: $f is missing: run make" >&2; exit 1; }
done
command -v sqlite3 >/dev/null || { echo "demo: the sqlite3 shell is missing (apt-get install sqlite3)" >&2; exit 1; }
# Line-buffered output from the sqlite3 shell when it writes to a pipe.
linebuf=""
if command -v stdbuf >/dev/null; then linebuf="stdbuf -oL"; fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/walrust-demo.XXXXXX")
store="$dir/store"
primary="$dir/primary.db"
replica="$dir/replica.db"
writer_pid="" publish_pid="" replicate_pid=""

cleanup() {
	status=$?
	trap - EXIT INT TERM HUP
	touch "$dir/stop-writer"
	for pid in $replicate_pid $publish_pid; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in $replicate_pid $publish_pid $writer_pid; do
		wait "$pid" 2>/dev/null || true
	done
	if [ "${DEMO_KEEP:-}" = 1 ]; then
		echo "(kept $dir)"
	else
		rm -rf "$dir"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

say() { printf '\n== %s\n' "$*"; }
indent() { sed 's/^/    /'; }
fail() {
	echo "demo: FAILED: $*" >&2
	for log in publish replicate; do
		[ -s "$dir/$log.log" ] && { echo "--- $log.log" >&2; tail -n 20 "$dir/$log.log" >&2; }
	done
	exit 1
}
# wait_for FILE PATTERN SECONDS PID: until a line of FILE matches PATTERN,
# while process PID runs.
wait_for() {
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ "$i" -le $(($3 * 10)) ] && kill -0 "$4" 2>/dev/null || return 1
		sleep 0.1
	done
}
rows() { sqlite3 -cmd '.timeout 2000' "$1" 'SELECT count(*) FROM events' 2>/dev/null || echo '?'; }

say "A primary database in $dir"
sqlite3 "$primary" >/dev/null <<'EOF'
PRAGMA journal_mode = wal;
CREATE TABLE events (id INTEGER PRIMARY KEY, at TEXT NOT NULL, payload BLOB);
INSERT INTO events (at, payload) SELECT strftime('%Y-%m-%d %H:%M:%f', 'now'), randomblob(200) FROM generate_series(1, 500);
EOF
echo "    primary.db: WAL mode, $(rows "$primary") rows; a writer adds 5 rows every 100ms"
(
	# Signals do not stop the writer half-way: cleanup asks it to stop (the
	# stop-writer file) and waits, so no sqlite3 of it outlives the demo or
	# writes into a directory being removed. (Ignored signals are inherited:
	# each insert finishes too.)
	trap '' INT TERM HUP
	while [ ! -e "$dir/stop-writer" ]; do
		sqlite3 "$primary" ".timeout 5000" \
			"INSERT INTO events (at, payload) SELECT strftime('%Y-%m-%d %H:%M:%f', 'now'), randomblob(200) FROM generate_series(1, 5)" \
			>/dev/null 2>>"$dir/writer.log" || true
		sleep 0.1
	done
) &
writer_pid=$!

say "walrust publish primary.db file://$store --interval 200ms"
"$walrust" publish "$primary" "file://$store" --interval 200ms >"$dir/publish.log" 2>&1 &
publish_pid=$!
wait_for "$dir/publish.log" '^Published snapshot' 20 "$publish_pid" || fail "no snapshot was published"
grep -m1 '^Published snapshot' "$dir/publish.log" | indent

say "walrust replicate file://$store --local replica.db --interval 200ms &"
"$walrust" replicate "file://$store" --local "$replica" --interval 200ms >"$dir/replicate.log" 2>&1 &
replicate_pid=$!
wait_for "$dir/replicate.log" '^Polling for updates' 20 "$replicate_pid" || fail "replicate did not start following"
sed -n '1,/^Polling for updates/p' "$dir/replicate.log" | indent
echo "    (it follows the store in the background until the end; plain sqlite3 can read replica.db meanwhile:)"
for i in 1 2; do
	sleep 1
	echo "    primary $(rows "$primary") rows | sqlite3 'file:replica.db?mode=ro': $(rows "file:$replica?mode=ro") rows"
done

say "sqlite3 -cmd '.load build/walrust' -cmd \".open 'file:replica.db?vfs=walrust'\""
echo "    (the extension reads replica.db as replicate applies the files, a query a second)"
{
	echo ".headers off"
	for i in 1 2 3 4; do
		echo "SELECT printf('%s  %d rows, newest row %.2fs old', strftime('%H:%M:%f', 'now'), count(*), (julianday('now') - julianday(max(at))) * 86400) FROM events;"
		echo ".shell sleep 1"
	done
	echo "PRAGMA walrust_status;"
} | $linebuf sqlite3 -batch -cmd ".load $ext" -cmd ".open 'file:$replica?vfs=walrust'" 2>&1 |
	tee "$dir/session.out" | sed -e '/^{/d' -e 's/^/    /'
[ "$(grep -c 'rows, newest row' "$dir/session.out")" = 4 ] || { cat "$dir/session.out" >&2; fail "the sqlite3 shell failed"; }
status_json=$(grep '^{' "$dir/session.out" | tail -n 1)
[ -n "$status_json" ] || fail "PRAGMA walrust_status printed nothing"
json() { printf '%s\n' "$status_json" | sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }
lag=$(json lag_seconds)
echo "    PRAGMA walrust_status: txid $(json txid), lag_seconds $(printf '%.2f' "$lag"), role $(json role)"

say "walrust-shell --local replica.db -c 'SELECT count(*) ...; PRAGMA walrust_txid'"
"$wshell" --local "$replica" -c "SELECT count(*) AS rows, max(id) AS last_id FROM events; PRAGMA walrust_txid;" 2>&1 | indent

say "The writer stops; the publisher publishes what is left"
touch "$dir/stop-writer"
wait "$writer_pid" || true
writer_pid=""
kill -INT "$publish_pid"
wait "$publish_pid" || fail "publish exited with status $? after SIGINT"
publish_pid=""
"$walrust" publish "$primary" "file://$store" >"$dir/final.log" 2>&1 || { cat "$dir/final.log" >&2; fail "the last publish failed"; }
indent <"$dir/final.log"
want=$(sed -n 's/.*TXID \([0-9][0-9]*\).*/\1/p' "$dir/final.log" | tail -n 1)
[ -n "$want" ] || fail "no TXID in the last publish's output"
primary_rows=$(rows "$primary")

# The replica catches up: read it through the extension until it serves
# the published TXID.
got="" replica_rows="" i=0
while :; do
	out=$(printf 'PRAGMA walrust_txid;\nSELECT count(*) FROM events;\n' |
		sqlite3 -batch -cmd ".load $ext" -cmd ".open 'file:$replica?vfs=walrust'" 2>&1) || fail "reading the replica: $out"
	got=$(printf '%s\n' "$out" | sed -n 1p)
	replica_rows=$(printf '%s\n' "$out" | sed -n 2p)
	[ "$got" = "$want" ] && break
	i=$((i + 1))
	[ "$i" -lt "${DEMO_CATCHUP_TRIES:-30}" ] || break
	sleep 0.5
done

say "walrust replicate stops (SIGINT)"
kill -INT "$replicate_pid"
wait "$replicate_pid" || fail "replicate exited with status $? after SIGINT"
replicate_pid=""
applied=$(grep -c '^Applied 0' "$dir/replicate.log" || true)
echo "    It applied $applied LTX files, one line each, the last ones:"
grep '^Applied 0' "$dir/replicate.log" | tail -n 2 | indent
tail -n 1 "$dir/replicate.log" | indent

say "Summary"
printf 'Summary: primary %s rows, replica %s rows; TXID %s published, TXID %s on the replica; lag %.2fs while writing\n' \
	"$primary_rows" "$replica_rows" "$want" "$got" "$lag"
if [ "$got" != "$want" ] || [ "$primary_rows" != "$replica_rows" ]; then
	fail "the replica did not catch up with the primary"
fi
echo "The replica caught up with the primary."
