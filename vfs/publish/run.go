package publish

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"
)

// Run publishes now and then every interval until ctx is done. A publish
// that has started when ctx is done is finished, not abandoned; then Run
// returns nil. Failed publishes go to Options.OnError and are retried at
// the next tick, but for ErrForked, which Run returns.
func (p *Publisher) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("publish %s: interval must be positive, not %s", p.dbPath, interval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var failedSince time.Time // the first failure of the current run of them
	failed := 0
	for {
		began := time.Now()
		res, err := p.PublishOnce(context.WithoutCancel(ctx))
		if errors.Is(err, ErrForked) || errors.Is(err, ErrLitestream) {
			return err // no later publish can fix that
		}
		switch {
		case err != nil:
			if failed == 0 {
				failedSince = began
			}
			failed++
		case failed > 0:
			if p.opts.OnRecover != nil {
				p.opts.OnRecover(failedSince, failed)
			}
			failed = 0
		}
		switch {
		case err != nil && p.opts.OnError != nil:
			p.opts.OnError(err)
		case err != nil:
			log.Print(err)
		default:
			if res.UpkeepErr != nil && p.opts.OnError != nil {
				p.opts.OnError(res.UpkeepErr)
			} else if res.UpkeepErr != nil {
				log.Print(res.UpkeepErr)
			}
			if (res.Changed || res.Periodic != nil || res.Retention != nil) && p.opts.OnPublish != nil {
				p.opts.OnPublish(res)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
