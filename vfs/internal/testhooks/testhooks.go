// Package testhooks lets tests outside package vfs (vfs/e2e) look inside
// it. Package vfs fills in every hook when it initializes (they stay nil in
// a program without it); nothing but a test calls one, so production pays
// nothing beyond what vfs itself checks: one atomic load a read, for the
// read hook.
package testhooks

import (
	"log/slog"
	"time"
)

// DirectReads is how many reads vfs's C layer has served without Go.
var DirectReads func() uint64

// GatedTransactions is how many read transactions vfs's C layer began at
// a replica's gate, without Go.
var GatedTransactions func() uint64

// SetLogger makes vfs log to l until restore (followers started meanwhile keep l); not while a database opens.
var SetLogger func(l *slog.Logger) (restore func())

// S3Clients is how many S3 clients the replicas of the process share.
var S3Clients func() int

// SetReadHook passes every read SQLite makes of a database file to h, none served without Go, until restore.
var SetReadHook func(h func(path string, off int64, n int)) (restore func())

// SetViewsKept sets how many as_of views are kept next to one replica
// until restore; not while a view opens.
var SetViewsKept func(n int) (restore func())

// SetHydrateDelay slows every lazy bootstrap's stream by d a batch of
// pages until restore, so that a test can read while it hydrates.
var SetHydrateDelay func(d time.Duration) (restore func())
