package vfs

/*
// The package's C (layer.c, and layer_linked.c or the extension's entry)
// builds without a warning.
#cgo CFLAGS: -Wall -Wextra -Werror
#include "layer.h"
*/
import "C"

// walrustDirect is called by the layer right after a main database file's
// SHARED lock: it fills out and returns 1 when the transaction can read
// pages of its version from the base file without Go (see
// replica.Version.Direct); 0 otherwise.
//
//export walrustDirect
func walrustDirect(id C.uint64_t, out *C.wl_direct) (ok C.int) {
	defer func() {
		if p := recover(); p != nil { // no panic may cross into C
			logger.Error("internal error", "op", "direct", "panic", p)
			ok = 0
		}
	}()
	f, _ := sqlite3vfsFile(uint64(id)).(*dbFile)
	if f == nil || f.pinned == nil || readHook.Load() != nil {
		return 0 // a test watching reads sees them all
	}
	// A fresh transaction: no revocation of an earlier one can be under
	// way (Undirect, at its unlock, waited for any), and none of this one
	// before Direct registers it.
	out.revoked, out.inflight = 0, 0
	rv := cRevoker{out}
	d, direct := f.pinned.Direct(rv)
	if !direct {
		return 0
	}
	f.revoker = rv
	out.fd = C.int(d.FD)
	out.pageSize = C.int(f.pinned.PageSize)
	out.limit = C.int64_t(d.Limit)
	out.bits = (*C.uint64_t)(d.Bits) // outside Go's heap: C may keep it
	out.pages = C.uint32_t(d.Pages)
	return 1
}

// cRevoker revokes one transaction's direct reads in the layer; its
// wl_direct lives in the layer's file, which outlives the transaction.
type cRevoker struct{ d *C.wl_direct }

func (r cRevoker) Revoke() { C.walrustRevoke(r.d) }

// directReads is how many reads the layer served without Go.
func directReads() uint64 { return uint64(C.walrustDirectReads()) }
