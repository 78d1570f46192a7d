// Package bench measures walrust against SQLite itself and against the
// physical limits of the machine it runs on: reads through the walrust VFS
// against the same file through SQLite's default VFS, replication lag
// against an ideal poller, bootstrap against a plain download of the same
// snapshot, apply throughput against raw page writes, and the store
// requests an idle replica makes per poll.
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
package bench
