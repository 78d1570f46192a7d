package vfs

/*
// The package's C (layer.c, and layer_linked.c or the extension's entry)
// builds without a warning.
#cgo CFLAGS: -Wall -Wextra -Werror
#include "layer.h"
*/
import "C"

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
