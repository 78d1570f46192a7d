package vfs

/*
// The package's C (layer.c, and layer_linked.c or the extension's entry)
// builds without a warning.
#cgo CFLAGS: -Wall -Wextra -Werror
#include "layer.h"
*/
import "C"

import (
	"unsafe"

	"github.com/walrust/walrust/vfs/replica"
)

// fillDirect, called at the SHARED lock that pinned f.pinned, tells the
// layer (f.direct, bound at the open) whether and how the transaction can
// read pages of its version from the base file without Go (see
// replica.Version.Direct), and the version's size. Without a layer (a
// file opened by sqlite3vfs alone) there is nothing to fill.
func (f *dbFile) fillDirect() {
	out := f.direct
	if out == nil {
		return
	}
	out.fd = -1
	if readHook.Load() != nil {
		return // a test watching reads sees them all
	}
	// A fresh transaction: no revocation of an earlier one can be under
	// way (Undirect, at its unlock, waited for any), and none of this one
	// before Direct registers it.
	out.revoked, out.inflight = 0, 0
	rv := cRevoker{out}
	d, direct := f.pinned.Direct(rv)
	if !direct {
		return
	}
	f.revoker = rv
	out.pageSize = C.int(f.pinned.PageSize)
	out.limit = C.int64_t(d.Limit)
	out.size = C.int64_t(f.pinned.Size())
	out.bits = (*C.uint64_t)(d.Bits) // outside Go's heap: C may keep it
	out.pages = C.uint32_t(d.Pages)
	out.page1 = 0
	if d.Page1 {
		out.page1 = 1
	}
	out.fd = C.int(d.FD) // last: the layer reads directly once fd is set
}

// directOut is the layer's wl_direct, for the files that do not import C.
type directOut = C.wl_direct

// cRevoker revokes one transaction's direct reads in the layer; its
// wl_direct lives in the layer's file, which outlives the transaction.
type cRevoker struct{ d *C.wl_direct }

func (r cRevoker) Revoke() { C.walrustRevoke(r.d) }

// directReads is how many reads the layer served without Go.
func directReads() uint64 { return uint64(C.walrustDirectReads()) }

// gatedTransactions is how many transactions the layer began at a gate.
func gatedTransactions() uint64 { return uint64(C.walrustGatedTransactions()) }

// setGates turns the layer's gates on or off (a test that watches every
// read turns them off: a gated transaction reads nothing through Go).
func setGates(on bool) {
	c := C.int(0)
	if on {
		c = 1
	}
	C.walrustGates(c)
}

// gateLayoutOK says replica.GateMem is laid out as the layer's wl_gate;
// when not (a change to one and not the other), no connection is given a
// gate, and every transaction begins in Go.
var gateLayoutOK = func() bool {
	var c C.wl_gate
	var g replica.GateMem
	cs, gs := c.slots[0], g.Slots[0]
	return unsafe.Sizeof(c) == unsafe.Sizeof(g) && len(c.slots) == len(g.Slots) &&
		unsafe.Offsetof(c.current) == unsafe.Offsetof(g.Current) &&
		unsafe.Offsetof(c.slots) == unsafe.Offsetof(g.Slots) &&
		unsafe.Sizeof(cs) == unsafe.Sizeof(gs) &&
		unsafe.Offsetof(cs.word) == unsafe.Offsetof(gs.Word) &&
		unsafe.Offsetof(cs.revoked) == unsafe.Offsetof(gs.Revoked) &&
		unsafe.Offsetof(cs.inflight) == unsafe.Offsetof(gs.Inflight) &&
		unsafe.Offsetof(cs.fd) == unsafe.Offsetof(gs.FD) &&
		unsafe.Offsetof(cs.pageSize) == unsafe.Offsetof(gs.PageSize) &&
		unsafe.Offsetof(cs.size) == unsafe.Offsetof(gs.Size) &&
		unsafe.Offsetof(cs.limit) == unsafe.Offsetof(gs.Limit) &&
		unsafe.Offsetof(cs.bits) == unsafe.Offsetof(gs.Bits) &&
		unsafe.Offsetof(cs.pages) == unsafe.Offsetof(gs.Pages) &&
		unsafe.Offsetof(cs.page1) == unsafe.Offsetof(gs.Page1) &&
		unsafe.Offsetof(c.page1) == unsafe.Offsetof(g.Page1)
}()

// gateFor is the layer's view of the entry's gate for one connection:
// nil when its transactions must begin in Go (max_lag= is checked there;
// a view never changes and is read passively).
func (f *dbFile) gateFor() *C.wl_gate {
	if f.s.gate == nil || !gateLayoutOK || f.maxLag > 0 || f.s.isView() {
		return nil
	}
	return (*C.wl_gate)(f.s.gate.Mem())
}

// adopt takes over in Go a transaction the layer began at the gate, when
// the connection calls in during it (a read the layer does not serve, a
// PRAGMA): Go pins the same version, and the layer's unlock calls in to
// unpin it.
func (f *dbFile) adopt() {
	d := f.direct
	if f.pinned != nil || d == nil || d.gated == 0 || d.adopted != 0 {
		return
	}
	v := f.s.gate.Adopt(int(d.gated) - 1)
	f.pinned, f.end = v, v.Unpin
	d.adopted = 1
}
