package publish

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/follow"
	"github.com/walrust/walrust/vfs/replica"
	"github.com/walrust/walrust/vfs/store"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

func TestPlanRetention(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	old := func(f store.FileInfo, d time.Duration) store.FileInfo { f.ModTime = now.Add(-d); return f }
	span := func(level int, minTXID, maxTXID ltx.TXID) store.FileInfo {
		return store.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID}
	}
	levels := func(byLevel map[int][]store.FileInfo) [][]store.FileInfo {
		out := make([][]store.FileInfo, store.SnapshotLevel+1)
		for level, files := range byLevel {
			out[level] = files
		}
		return out
	}
	at := func(txid ltx.TXID, last store.FileInfo, also *store.FileInfo) position {
		pos := position{TXID: txid, Last: refOf(last)}
		if also != nil {
			ref := refOf(*also)
			pos.Also = &ref
		}
		return pos
	}
	announce := l0(2)
	for _, tc := range []struct {
		name   string
		levels [][]store.FileInfo
		pos    position
		cover  ltx.TXID // 0: no pass
		del    []store.FileInfo
	}{{
		name: "the newest snapshot older than retention covers every level",
		levels: levels(map[int][]store.FileInfo{
			0: {l0(2), l0(3), l0(4), l0(5), l0(6)},
			1: {span(1, 2, 4), span(1, 4, 7)}, // 4-7 reaches past the cover
			3: {span(3, 1, 3)},
			9: {old(snap(1), 3*time.Hour), old(snap(4), 2*time.Hour), old(snap(6), time.Minute)},
		}),
		pos:   at(7, l0(7), nil),
		cover: 4,
		del:   []store.FileInfo{snap(1), l0(2), l0(3), span(3, 1, 3), l0(4), span(1, 2, 4), snap(4)},
	}, {
		name: "the newest level-0 file and the newest snapshot stay, however old",
		levels: levels(map[int][]store.FileInfo{
			0: {l0(2), l0(3)},
			9: {old(snap(1), 3*time.Hour), old(snap(3), 2*time.Hour)},
		}),
		pos:   at(3, snap(3), nil), // the position does not protect l0(3) here
		cover: 3,
		del:   []store.FileInfo{snap(1), l0(2)},
	}, {
		name: "the files the position names stay",
		levels: levels(map[int][]store.FileInfo{
			0: {l0(2), l0(3)},
			9: {old(snap(1), 3*time.Hour), old(snap(2), 2*time.Hour), snap(3)},
		}),
		pos:   at(2, snap(2), &announce),
		cover: 2,
		del:   []store.FileInfo{snap(1)},
	}, {
		name: "no snapshot is old enough",
		levels: levels(map[int][]store.FileInfo{
			0: {l0(2), l0(3)},
			9: {old(snap(1), 59*time.Minute), snap(3)},
		}),
		pos: at(3, l0(3), nil),
	}, {
		name: "a snapshot of unknown age is not old",
		levels: levels(map[int][]store.FileInfo{
			0: {l0(2), l0(3)},
			9: {snap(1), old(snap(3), time.Minute)},
		}),
		pos: at(3, l0(3), nil),
	}, {
		name: "a cover beyond the position is not ours",
		levels: levels(map[int][]store.FileInfo{
			0: {l0(2), l0(3)},
			9: {old(snap(1), 3*time.Hour), old(snap(5), 2*time.Hour)},
		}),
		pos: at(3, l0(3), nil),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			cover, del, ok := planRetention(tc.levels, tc.pos, now, time.Hour)
			if ok != (tc.cover != 0) || cover.MaxTXID != tc.cover {
				t.Fatalf("cover %s (ok %v), want TXID %d", cover, ok, tc.cover)
			}
			var got, want []string
			for _, f := range del {
				got = append(got, f.String())
			}
			for _, f := range tc.del {
				want = append(want, f.String())
			}
			if !sameNames(got, want) {
				t.Fatalf("deletes\n%v\nwant\n%v", got, want)
			}
		})
	}
}

// Retention deletes exactly the files at or before the newest snapshot
// older than Retention, keeps the newest level-0 file and the newest
// snapshot, and lists the whole store only when a new snapshot has grown
// old enough, also across restarts.
func TestRetention(t *testing.T) {
	p := newPrimary(t, "wal", 4096)
	st := newFileStore(t)
	newTable(t, p)
	work := t.TempDir()
	opts := Options{WorkDir: work, SnapshotInterval: time.Hour, Retention: time.Hour}
	pub := publisherWith(t, p, st, opts)
	change := changer(t, p, pub, 100)
	storeHolds := func(l0s, snaps []store.FileInfo) {
		t.Helper()
		if got, want := names(t, st, 0), nameList(l0s...); !sameNames(got, want) {
			t.Fatalf("L0 %v, want %v", got, want)
		}
		if got, want := names(t, st, store.SnapshotLevel), nameList(snaps...); !sameNames(got, want) {
			t.Fatalf("L9 %v, want %v", got, want)
		}
	}
	deleted := func(res Result, n int, cover ltx.TXID) {
		t.Helper()
		if n == 0 && res.Retention == nil {
			return
		}
		if res.Retention == nil || res.Retention.Deleted != n || res.Retention.Cover.MaxTXID != cover || res.Retention.Cover.Level != store.SnapshotLevel {
			t.Fatalf("retention %+v, want %d files covered by the snapshot at TXID %d", res.Retention, n, cover)
		}
	}

	expect(t, publishOnce(t, pub), true, true, 1)
	for txid := ltx.TXID(2); txid <= 4; txid++ {
		deleted(change(txid), 0, 0)
	}

	// The first snapshot grows old: a periodic one follows at TXID 5, and
	// the old one goes, since a newer one exists; the level-0 files stay,
	// for replicas that are less than an hour behind.
	age(t, st, snap(1), 3*time.Hour)
	res := change(5)
	if res.Periodic == nil || res.Periodic.File.MaxTXID != 5 {
		t.Fatalf("no periodic snapshot at 5: %+v", res)
	}
	deleted(res, 1, 1)
	storeHolds([]store.FileInfo{l0(2), l0(3), l0(4), l0(5)}, []store.FileInfo{snap(5)})

	// The snapshot at 5 grows old: everything up to it goes but the newest
	// snapshot (now 6) and the newest level-0 file.
	age(t, st, snap(5), 2*time.Hour)
	res = change(6)
	deleted(res, 5, 5)
	storeHolds([]store.FileInfo{l0(6)}, []store.FileInfo{snap(6)})
	verifyStore(t, p, st, res)

	// Nothing new is old enough: a change costs the two LISTs of the store
	// check, no more.
	lists := st.Stats().Lists
	deleted(change(7), 0, 0)
	if n := st.Stats().Lists - lists; n != 2 {
		t.Fatalf("a publish without a retention pass made %d LISTs, want 2", n)
	}
	storeHolds([]store.FileInfo{l0(6), l0(7)}, []store.FileInfo{snap(6)})

	// After a restart, with everything old: the newest level-0 file and the
	// newest snapshot stay.
	age(t, st, snap(6), 2*time.Hour)
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	pub = publisherWith(t, p, st, opts)
	res = publishOnce(t, pub)
	expect(t, res, false, false, 7)
	if res.Periodic == nil || res.Periodic.File.MaxTXID != 7 {
		t.Fatalf("no periodic snapshot at 7: %+v", res)
	}
	deleted(res, 2, 6)
	storeHolds([]store.FileInfo{l0(7)}, []store.FileInfo{snap(7)})
	age(t, st, snap(7), 2*time.Hour)
	age(t, st, l0(7), 2*time.Hour)
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	pub = publisherWith(t, p, st, opts)
	lists = st.Stats().Lists
	res = publishOnce(t, pub)
	deleted(res, 0, 0)
	if n := st.Stats().Lists - lists; n != 2+store.SnapshotLevel+1 {
		t.Fatalf("a retention pass made %d LISTs, want the store check's 2 and one per level", n-2)
	}
	storeHolds([]store.FileInfo{l0(7)}, []store.FileInfo{snap(7)})

	// The pass that covered TXID 7 is remembered across a restart.
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	pub = publisherWith(t, p, st, opts)
	lists = st.Stats().Lists
	res = publishOnce(t, pub)
	if n := st.Stats().Lists - lists; n != 2 || res.Retention != nil {
		t.Fatalf("after a restart, %d LISTs and %+v: the last pass is forgotten", n, res.Retention)
	}
	verifyStore(t, p, st, res)
}

// A deletion that fails goes to OnError; the publishes go on, and the pass
// waits before it tries again.
func TestRetentionDeleteFails(t *testing.T) {
	p := newPrimary(t, "delete", 4096)
	fs := newFileStore(t)
	st := &faultyStore{Store: fs, failDelete: func(store.FileInfo) bool { return true }}
	newTable(t, p)
	work := t.TempDir()
	opts := Options{WorkDir: work, SnapshotInterval: time.Hour, Retention: time.Hour}
	pub := publisherWith(t, p, st, opts)
	expect(t, publishOnce(t, pub), true, true, 1)
	age(t, fs, snap(1), 2*time.Hour)
	insertRows(t, p, 100, 10, 200)
	res, err := pub.PublishOnce(context.Background())
	if err != nil {
		t.Fatalf("the publish failed with its retention pass: %v", err)
	}
	expect(t, res, true, false, 2)
	if res.Periodic == nil || !errors.Is(res.UpkeepErr, errInjected) || !strings.Contains(res.UpkeepErr.Error(), "retention") {
		t.Fatalf("periodic %+v, upkeep error %v", res.Periodic, res.UpkeepErr)
	}
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}

	// Through Run: the error goes to OnError, once.
	var mu sync.Mutex
	var errs []error
	opts.OnError = func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	pub = publisherWith(t, p, st, opts)
	st.deletes.Store(0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pub.Run(ctx, 5*time.Millisecond) }()
	testtool.Eventually(t, "an error to be reported", 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) == 0 {
			return errors.New("no error reported")
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // many ticks
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(errs) != 1 || !errors.Is(errs[0], errInjected) || !strings.Contains(errs[0].Error(), "retention") {
		t.Fatalf("errors %v, want one retention failure", errs)
	}
	if n := st.deletes.Load(); n != 1 {
		t.Fatalf("%d deletes tried, want 1 (the pass stops at the first failure and waits)", n)
	}
	if got := names(t, st, store.SnapshotLevel); !sameNames(got, nameList(snap(1), snap(2))) {
		t.Fatalf("snapshots %v", got)
	}
}

// A replica stopped before a retention pass deleted the files it needed
// next starts over from the newest snapshot when it comes back, and then
// holds what the primary holds.
func TestReplicaAfterRetention(t *testing.T) {
	p := newPrimary(t, "wal", 4096)
	st := newFileStore(t)
	newTable(t, p)
	pub := publisherWith(t, p, st, Options{SnapshotInterval: time.Hour, Retention: time.Hour})
	expect(t, publishOnce(t, pub), true, true, 1)
	insertRows(t, p, 100, 10, 200)
	expect(t, publishOnce(t, pub), true, false, 2)

	path := filepath.Join(t.TempDir(), "replica.db")
	var mu sync.Mutex
	var events []follow.Event
	followTo := func(txid ltx.TXID) (*replica.Replica, *follow.Follower) {
		t.Helper()
		r, err := replica.Open(path, st.String())
		if err != nil {
			t.Fatal(err)
		}
		f := follow.Follow(r, st, follow.Options{Interval: 5 * time.Millisecond, OnEvent: func(e follow.Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
		}})
		if err := f.WaitReady(15 * time.Second); err != nil {
			t.Fatal(err)
		}
		testtool.Eventually(t, fmt.Sprintf("the replica to reach TXID %d", txid), 15*time.Second, func() error {
			if h := r.Head(); h == nil || h.TXID != txid {
				return fmt.Errorf("replica at %+v; status %+v", h, f.Status())
			}
			return nil
		})
		return r, f
	}
	r, f := followTo(2)
	f.Close()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	change := changer(t, p, pub, 200)
	change(3)
	age(t, st, snap(1), 3*time.Hour)
	change(4) // a periodic snapshot at 4; the one at 1 goes
	age(t, st, snap(4), 2*time.Hour)
	res := change(5) // a periodic snapshot at 5; everything up to 4 goes
	if res.Retention == nil || res.Retention.Cover.MaxTXID != 4 {
		t.Fatalf("retention %+v", res.Retention)
	}
	if got := names(t, st, 0); !sameNames(got, nameList(l0(5))) {
		t.Fatalf("L0 %v: the replica's next file is still there, the test proves nothing", got)
	}

	mu.Lock()
	events = nil
	mu.Unlock()
	r, f = followTo(5)
	defer r.Close()
	defer f.Close()
	mu.Lock()
	var rebootstrapped bool
	for _, e := range events {
		rebootstrapped = rebootstrapped || (e.Kind == follow.EventRebootstrap && e.File.MaxTXID == 5)
	}
	mu.Unlock()
	if !rebootstrapped {
		t.Fatalf("the replica reached TXID 5 without starting over from the snapshot at 5: %+v", events)
	}
	checkReplica(t, p, r)
}

// checkReplica copies the replica's newest version to a file and compares
// it with the primary.
func checkReplica(t *testing.T, p *primary, r *replica.Replica) {
	t.Helper()
	v, err := r.Pin()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Unpin()
	b := make([]byte, v.Size())
	if _, err := v.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "replica-copy.db")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	p.checkpoint()
	sameContent(t, p, path)
}

// changer returns a change to the primary: five more rows, from row on,
// published as level-0 TXID txid, with no upkeep error.
func changer(t *testing.T, p *primary, pub *Publisher, row int) func(txid ltx.TXID) Result {
	return func(txid ltx.TXID) Result {
		t.Helper()
		insertRows(t, p, row, 5, 200)
		row += 5
		res := publishOnce(t, pub)
		expect(t, res, true, false, uint64(txid))
		if res.UpkeepErr != nil {
			t.Fatal(res.UpkeepErr)
		}
		return res
	}
}
