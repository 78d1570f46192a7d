// Package vfs is the SQLite-facing side of walrust: a read-only VFS named
// "walrust" whose database files are self-updating replicas, configured per
// database by URI parameters.
//
// Data flows one way, and the packages follow it:
//
//	store ──list/get──▶ follow ──apply──▶ replica ──pin/read──▶ vfs ──▶ SQLite
//
//	vfs/store            the object store LTX files are read from (a local
//	                     directory or S3), one table entry per scheme
//	vfs/internal/ltxguard  checks an LTX stream against its name and limits
//	                     before the decoder reads it
//	vfs/replica          the local replica: base file, state, versions,
//	                     folds, SQLite's file locks, the gate readers in C
//	                     pin versions at, a lazy bootstrap's
//	                     hydration (fetching through a function it is
//	                     handed); knows no store
//	vfs/follow           keeps a replica current with a store (bootstrap,
//	                     poll, plan, fetch, apply), and puts the two
//	                     together: follow.Start, used by this package and
//	                     by walrust replicate; follow.BuildAt builds a
//	                     replica as of a past point (walrust restore)
//	vfs                  the VFS: one follower per file per process
//	                     (registry.go, role.go), read transactions pinned
//	                     to one version (dbfile.go), the C layer that begins
//	                     transactions at a replica's gate and serves reads
//	                     of the base file without Go (layer.c), and
//	                     default-VFS mode: the router that serves replicas
//	                     by plain path and passes other files through
//	                     (router.c, defaultvfs.go)
//	vfs/publish          walrust publish: a SQLite database to LTX files
//	vfs/internal/durable crash-safe file writes
//	vfs/e2e              the end-to-end tests, through real SQLite clients
//	vfs/testkit/...      what the tests share: a producer and its store
//	                     (worldtest), LTX builders (ltxtest), S3 servers
//	                     (s3test), tools and waits (testtool)
package vfs
