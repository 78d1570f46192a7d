// Package bench measures walrust against SQLite itself and against the
// physical limits of the machine it runs on: reads through the walrust VFS
// against SQLite's default VFS on a WAL-mode and on a rollback-mode copy of
// the same content, replication lag
// against an ideal poller, bootstrap against a plain download of the same
// snapshot, apply throughput against raw page writes, and the store
// requests an idle replica makes per poll. With -peer (make bench passes
// build/litestream-vfs.so) the Litestream v0.5.18 VFS gets a column of its
// own, measured in python3 child processes (peer_test.go, peer.py).
//
// Every figure is a ratio of two things measured in the same run, the two
// interleaved (A,B,B,A,...) so that drift on a shared machine hits both. The
// benchmark lives in this package's tests: `make bench` builds the test
// binary and runs it with -full, which prints one Markdown table; a plain
// `go test` (and so `make test`) runs every scenario once at a tiny size and
// checks only that it produces sane numbers.
//
//	make bench
//	build/walrust-bench.test -test.run '^TestBench$' -full -only reads -test.cpuprofile reads.prof
//	build/walrust-bench.test -test.run '^TestBench$' -full -only reads -peer build/litestream-vfs.so
package bench
