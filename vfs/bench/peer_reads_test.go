package bench

import (
	"fmt"
	"path/filepath"
)

// peerReads runs the read cases in three python3 children, one after the
// other, each reading the same content: walrust.so (a replica of its own,
// bootstrapped from the same file store), the Litestream VFS (the same file
// store as its replica) and the default VFS alone. In each child every
// sample of the VFS is interleaved with one of SQLite's default VFS on the
// WAL-mode copy, so each ratio compares two things in the same process with
// the same SQLite (Debian's, not mattn's). It returns the peer cell of each
// case and adds the peak-memory row.
func (b *bench) peerReads(big *testDB, storeRoot, walPath string, cases []readCase) []string {
	dir := filepath.Join(b.dir, "reads")
	var pc []peerCase
	for k, c := range cases {
		c.peer.Pairs = b.cfg.scaled(c.peer.Pairs)
		cases[k].peer = c.peer
		pc = append(pc, c.peer)
	}
	job := func(extURI string) peerJob {
		return peerJob{Job: "reads", ExtURI: extURI, NativeURI: "file:" + walPath,
			Rows: big.rows, RangeRows: b.cfg.rangeRows, Cases: pc}
	}

	w := b.walrustPeer()
	wo := b.runPeer(w, job(fmt.Sprintf("file:%s?vfs=walrust&source=file://%s&interval=1s&timeout=10m",
		filepath.Join(dir, "peer-replica.db"), storeRoot)))
	b.logf("reads, peer: walrust in python3 done (peak RSS %d MiB)", wo.HWMKiB>>10)

	ls := b.litestreamPeer("file://"+storeRoot, dir)
	lo := b.runPeer(ls, job("file:"+filepath.Join(dir, "litestream.db")+"?vfs=litestream"))
	b.logf("reads, peer: Litestream VFS in python3 done (peak RSS %d MiB)", lo.HWMKiB>>10)

	nat := peerVFS{name: "default VFS (python3)", env: w.env}
	no := b.runPeer(nat, job("file:"+walPath))

	if len(wo.Cases) != len(cases) || len(lo.Cases) != len(cases) {
		b.t.Fatalf("peer children answered %d and %d cases, want %d", len(wo.Cases), len(lo.Cases), len(cases))
	}
	cells := make([]string, len(cases))
	for k := range cases {
		l, wk := lo.Cases[k], wo.Cases[k]
		cells[k] = fmt.Sprintf("%s /sample = %s the WAL copy (walrust: %s), python3, n=%d",
			fmtSec(l.Ext), fmtPeerRatio(l.Ext, l.Native), fmtPeerRatio(wk.Ext, wk.Native), cases[k].peer.Pairs)
		b.logf("reads, peer: %s: Litestream %s vs native %s; walrust %s vs native %s", cases[k].what,
			fmtSec(l.Ext), fmtSec(l.Native), fmtSec(wk.Ext), fmtSec(wk.Native))
	}

	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	b.add(row{
		group: "memory",
		what:  fmt.Sprintf("peak RSS (VmHWM) of a python3 process running the read rows' queries, %d MiB database", big.mb),
		walrust: fmt.Sprintf("%.0f MiB (of which python3 at start: %.0f MiB)",
			mib(wo.HWMKiB), mib(wo.StartKiB)),
		baseline: fmt.Sprintf("%.0f MiB: the same process with the default VFS only", mib(no.HWMKiB)),
		a:        mib(wo.HWMKiB), b: mib(no.HWMKiB),
		peer: fmt.Sprintf("%.0f MiB (%.1f× walrust's)", mib(lo.HWMKiB), float64(lo.HWMKiB)/float64(wo.HWMKiB)),
	})
	return cells
}
