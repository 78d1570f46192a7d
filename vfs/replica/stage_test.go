package replica

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/testkit/worldtest"
)

// TestSnapshotWriterGap: the writer stage of decodeSnapshot leaves zeros
// for a page the snapshot does not hold (the lock page, in a database past
// 1 GiB), within a batch and across two, and checksums exactly the pages it
// was given.
func TestSnapshotWriterGap(t *testing.T) {
	const ps = 512
	f, err := os.Create(filepath.Join(t.TempDir(), "staged"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := func(pgno uint32) []byte { return bytes.Repeat([]byte{byte(pgno)}, ps) }
	batch := func(pgnos ...uint32) *snapshotBatch {
		b := &snapshotBatch{}
		for _, p := range pgnos {
			b.buf = append(b.buf, page(p)...)
			b.pgnos = append(b.pgnos, p)
		}
		return b
	}
	w := &snapshotWriter{f: f, ps: ps, hasher: ltx.NewHasher(), next: 1}
	full := make(chan *snapshotBatch, 3)
	free := make(chan *snapshotBatch, 3)
	full <- batch(1, 2)
	full <- batch(4, 5, 7) // a gap before the batch (3) and one within it (6)
	full <- batch(8)
	close(full)
	if err := w.run(full, free); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for p := uint32(1); p <= 8; p++ {
		if p == 3 || p == 6 {
			want = append(want, make([]byte, ps)...)
			continue
		}
		want = append(want, page(p)...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("staged file is %d bytes, not the %d expected, or differs", len(got), len(want))
	}
	if w.page1Sum != ltx.ChecksumPage(1, page(1)) {
		t.Fatalf("page 1 checksum %s, want %s", w.page1Sum, ltx.ChecksumPage(1, page(1)))
	}
	if len(free) != 3 {
		t.Fatalf("%d batches given back, want 3", len(free))
	}
}

// TestStageSnapshotWriteFails: when the staged file cannot be written, the
// decoder stops and StageSnapshot returns the write error instead of
// hanging or blaming the snapshot's content.
func TestStageSnapshotWriteFails(t *testing.T) {
	w := newWorld(t, 4096, false)
	w.InsertRows(2000, 300) // a few hundred pages: several batches
	w.Advance(w.Ref.Image())
	snap := w.Encode(1, 2)

	name := filepath.Join(t.TempDir(), "staged")
	if err := os.WriteFile(name, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name) // read-only: every write fails
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	done := make(chan error, 1)
	go func() {
		_, err := decodeSnapshot(context.Background(), f, bytes.NewReader(snap), worldtest.WantOf(snap, true))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "write staged") {
			t.Fatalf("decodeSnapshot into a read-only file: %v; want the write error", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("decodeSnapshot hangs when its writes fail")
	}
}

// TestStageSnapshotWrongChecksum: a snapshot whose trailer claims another
// database checksum than its pages have is rejected, and one that carries
// the right one stages with it. (The ltx decoder computes the checksum over
// a snapshot's pages; decodeSnapshot relies on it instead of a second pass.)
func TestStageSnapshotWrongChecksum(t *testing.T) {
	w := newWorld(t, 4096, false)
	w.InsertRows(50, 300)
	txid := w.Advance(w.Ref.Image())
	img := w.Image(txid)
	encode := func(post ltx.Checksum) []byte {
		var buf bytes.Buffer
		enc, err := ltx.NewEncoder(&buf)
		if err != nil {
			t.Fatal(err)
		}
		ps := w.Pub.PageSize
		if err := enc.EncodeHeader(ltx.Header{
			Version: ltx.Version, PageSize: ps, Commit: uint32(len(img)) / ps,
			MinTXID: 1, MaxTXID: txid, Timestamp: time.Now().UnixMilli(),
		}); err != nil {
			t.Fatal(err)
		}
		for pgno := uint32(1); pgno <= uint32(len(img))/ps; pgno++ {
			if err := enc.EncodePage(ltx.PageHeader{Pgno: pgno}, img[(pgno-1)*ps:pgno*ps]); err != nil {
				t.Fatal(err)
			}
		}
		enc.SetPostApplyChecksum(post)
		if err := enc.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	r := w.openReplica()
	defer r.Close()
	if st, err := stageFile(r, encode(w.Sum(txid)^0x10)); err == nil {
		st.Discard()
		t.Fatal("a snapshot with a wrong database checksum was staged")
	}
	st, err := stageFile(r, encode(w.Sum(txid)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Discard()
	if st.Meta.Checksum != w.Sum(txid) {
		t.Fatalf("staged with checksum %s, want %s", st.Meta.Checksum, w.Sum(txid))
	}
}
