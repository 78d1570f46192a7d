package vfs

import (
	"log/slog"

	"github.com/walrust/walrust/vfs/internal/testhooks"
	"github.com/walrust/walrust/vfs/replica"
)

// The hooks of vfs/internal/testhooks, for the tests outside this package.
func init() {
	testhooks.DirectReads = directReads
	testhooks.GatedTransactions = gatedTransactions
	testhooks.S3Clients = s3Clients.Len
	testhooks.SetLogger = func(l *slog.Logger) func() {
		old := logger
		logger = l
		return func() { logger = old }
	}
	testhooks.SetViewsKept = func(n int) func() {
		old := viewsKept
		viewsKept = n
		return func() { viewsKept = old }
	}
	testhooks.SetHydrateDelay = replica.SetStreamDelay
	testhooks.SetReadHook = func(h func(path string, off int64, n int)) func() {
		readHook.Store(&h)
		setGates(false)
		return func() {
			readHook.Store(nil)
			setGates(true)
		}
	}
}
