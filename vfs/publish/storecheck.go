package publish

import (
	"context"
	"fmt"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
)

// checkStore compares the store with the local position. head is the
// newest TXID among the store's level-0 files from the position on and its
// snapshots. reason is empty when the store ends exactly with the file that
// reached the position; otherwise it says why a snapshot must follow.
// Without a position only head matters.
func (p *Publisher) checkStore(ctx context.Context) (head ltx.TXID, reason string, err error) {
	var after ltx.TXID
	if p.hasPos {
		after = p.pos.TXID - 1
	}
	l0, err := p.st.ListAfter(ctx, 0, after)
	if err != nil {
		return 0, "", fmt.Errorf("check store: %w", err)
	}
	l9, err := p.st.ListAfter(ctx, store.SnapshotLevel, 0)
	if err != nil {
		return 0, "", fmt.Errorf("check store: %w", err)
	}
	p.noteSnapshots(l9)
	last := p.pos.Last.info()
	var found bool
	var other *store.FileInfo
	for _, f := range append(l0, l9...) {
		head = max(head, f.MaxTXID)
		switch {
		case p.pos.Last.is(f):
			found = true
		case p.pos.ours(f):
		case p.hasPos && f.MaxTXID == p.pos.TXID:
			other = &f
		}
	}
	switch {
	case !p.hasPos:
		return head, "", nil
	case p.pos.Promoted:
		return p.checkPromoted(head)
	case head > p.pos.TXID:
		return head, fmt.Sprintf("the store is ahead of the local position (TXID %d > %d)", head, p.pos.TXID), nil
	case !found:
		return head, fmt.Sprintf("the store no longer holds %s, the last file published from here", last), nil
	case other != nil:
		return head, fmt.Sprintf("the store holds %s, which is not the file published from here", other), nil
	}
	return head, "", nil
}
