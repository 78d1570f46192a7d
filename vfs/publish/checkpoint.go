package publish

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The publisher, not the application, decides when a WAL-mode database's
// log restarts from its first frame: its held read transaction (see
// walfollow.go) keeps the application's checkpoints from doing it. Left
// alone, the log would grow for ever, so:
//
//   - once the log holds checkpointFrames frames, a publish runs under a
//     barrier: the publisher takes the write lock (BEGIN IMMEDIATE, waiting
//     at most barrierWaitMs for the application's writer, else trying again
//     at the next publish), reads everything the log holds — nothing can
//     be added meanwhile — and writes its LTX file locally, then ends its
//     held transaction, runs a PASSIVE checkpoint (which never waits for
//     anyone), begins a new held transaction and lets writers go, before
//     the upload. When the checkpoint copied the whole log, the next
//     commit restarts it; it held nothing that is not in the file being
//     uploaded, and if that upload fails the chain is broken, so the next
//     publish compares in full. Writers wait for reading the log and
//     encoding the file (milliseconds), never for the store.
//   - past truncateFrames (application readers kept the PASSIVE
//     checkpoints from finishing), a TRUNCATE checkpoint, which waits for
//     readers and writers up to the busy timeout. Commits made between the
//     last read and the checkpoint then leave the log unseen, so the next
//     publish reads the whole database (as Litestream takes a snapshot
//     after its own TRUNCATE).
//
// Litestream's defaults: 1000 pages for PASSIVE, 121359 for TRUNCATE.
const (
	checkpointFrames = 1000
	truncateFrames   = 121359
	barrierWaitMs    = 200
)

// startBarrier takes the write lock when the log is due for a checkpoint
// and the held transaction vouches for the position (nil otherwise, or
// when a writer holds the lock for longer than barrierWaitMs).
func (p *Publisher) startBarrier(ctx context.Context) *sql.Conn {
	w := p.pos.WAL
	if !p.hasPos || w == nil || w.None || w.Frames < checkpointFrames || !p.chain || p.held == nil {
		return nil
	}
	conn, err := p.src.Conn(ctx)
	if err != nil {
		return nil
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", barrierWaitMs)); err != nil {
		conn.Close()
		return nil
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		conn.Close()
		return nil
	}
	return conn
}

// endBarrier checkpoints under the barrier when the publish read the log
// to its end without error (read is true), then releases the write lock.
// A publish that uploads a file calls it just before the upload, so that
// writers never wait for the store; if that upload then fails, the
// position stays where it was while the log may restart past it, so the
// caller must break the chain (commit does).
func (p *Publisher) endBarrier(ctx context.Context, read bool) error {
	barrier := p.barrier
	p.barrier = nil
	if barrier == nil {
		return nil
	}
	var err error
	if read && p.chain {
		// No writer since the log was read: between the end of the old
		// held transaction and the begin of the new one, the log holds
		// nothing that this publish has not read, so the chain holds for
		// the position it is about to reach.
		err = endRead(p.held)
		p.held = nil
		if err == nil {
			_, _, err = checkpoint(ctx, p.src, "PASSIVE")
		}
		if err == nil {
			p.held, err = beginRead(ctx, p.src)
		}
		if err != nil {
			p.chain = false
			err = fmt.Errorf("checkpoint: %w", err)
		}
	}
	_, rerr := barrier.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
	if rerr != nil {
		rerr = fmt.Errorf("release write lock: %w", rerr)
	}
	return errors.Join(err, rerr, barrier.Close())
}

// truncateIfLong runs a TRUNCATE checkpoint when the log has grown past
// truncateFrames. It breaks the chain: the next publish reads the whole
// database.
func (p *Publisher) truncateIfLong(ctx context.Context) error {
	w := p.pos.WAL
	if !p.hasPos || w == nil || w.None || w.Frames < truncateFrames {
		return nil
	}
	err := endRead(p.held)
	p.held, p.chain = nil, false
	busy, _, cerr := checkpoint(ctx, p.src, "TRUNCATE")
	if err = errors.Join(err, cerr); err == nil && busy {
		err = errors.New("readers or a writer kept it from finishing")
	}
	if err != nil {
		return fmt.Errorf("TRUNCATE checkpoint of a log of %d frames: %w", w.Frames, err)
	}
	return nil
}

// checkpoint runs PRAGMA wal_checkpoint(mode) on a connection of its own.
func checkpoint(ctx context.Context, db *sql.DB, mode string) (busy bool, frames int, err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return false, 0, err
	}
	defer conn.Close()
	var b, log, done int
	if err := conn.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&b, &log, &done); err != nil {
		return false, 0, fmt.Errorf("wal_checkpoint(%s): %w", mode, err)
	}
	return b != 0, log, nil
}
