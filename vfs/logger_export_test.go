package vfs

import "log/slog"

// SetLoggerForTest makes walrust log to l until restore is called. Followers
// started meanwhile keep l for their lifetime. Not safe to call while another
// goroutine opens a database.
func SetLoggerForTest(l *slog.Logger) (restore func()) {
	old := logger
	logger = l
	return func() { logger = old }
}
