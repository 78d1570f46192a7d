package main

import (
	"errors"
	"strings"

	"github.com/mattn/go-sqlite3"
)

// withoutErrno drops what mattn/go-sqlite3 appends to a SQLite error's
// message: the errno of the last system call that failed anywhere in the
// process (sqlite3_system_errno). The walrust VFS reports none of its own,
// so it is stale ("unable to open database file: invalid argument") and
// says nothing about the failure; walrust logs the reason instead.
func withoutErrno(err error) error {
	var se sqlite3.Error
	if !errors.As(err, &se) || se.SystemErrno == 0 {
		return err
	}
	full := se.Error()
	se.SystemErrno = 0
	return &quietError{err: err, msg: strings.Replace(err.Error(), full, se.Error(), 1)}
}

// quietError is an error with a shorter message; errors.Is and errors.As
// still see what it wraps.
type quietError struct {
	err error
	msg string
}

func (e *quietError) Error() string { return e.msg }
func (e *quietError) Unwrap() error { return e.err }
