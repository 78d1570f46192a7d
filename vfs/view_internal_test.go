package vfs

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// TestViewOpenRacesEviction: an open that opened a view's lock file just
// before another process evicted the view, and that process (or a third)
// built it again, must hold the lock of the view it reads, so that no
// eviction removes it while it is read. Before, the open held the lock
// file of the removed view, and the next eviction took the new view's
// lock and removed it under the reader.
func TestViewOpenRacesEviction(t *testing.T) {
	w := worldtest.New(t, worldtest.Options{})
	w.Snapshot()
	source := store.Canonical(w.Source)
	cfg := Config{AsOf: follow.Point{TXID: 1}}
	dir := filepath.Join(viewsDir(w.Path), viewName(cfg.AsOf))
	build := func() {
		t.Helper()
		if err := buildView(context.Background(), w.Path, dir, source, store.Options{}, cfg); err != nil {
			t.Fatal(err)
		}
	}
	build()

	// Between the open's open of the lock file and its flock: evicted,
	// and built again.
	raced := false
	viewLockHook = func(string) {
		if raced {
			return
		}
		raced = true
		if removed, err := removeView(dir); !removed || err != nil {
			t.Fatalf("evict: %v, %v", removed, err)
		}
		build()
	}
	defer func() { viewLockHook = func(string) {} }()
	v, p, err := openBuiltView(dir, source)
	if err != nil || v == nil {
		t.Fatalf("open the view: %v, %v", v, err)
	}
	defer p.Close()
	defer v.close()
	if removed, err := removeView(dir); removed || err != nil {
		t.Fatalf("a view being read was evicted (%v)", err)
	}
}
