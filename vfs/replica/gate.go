package replica

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// A Gate lets readers outside Go (the VFS's C layer) begin and end a read
// transaction without calling in, in the common case: nothing has changed
// since the last transaction, so the newest version is the one the base
// file holds, and every page of it can be read from the file.
//
// The replica opens the gate on such a version (at a Pin, so the first
// transaction after a change calls in and the ones after it do not), and
// closes it, under Replica.mu held for writing, before anything makes that
// version not the newest or rewrites the file: a publish, an install, a
// hydration given up, Close. A reader pins the opening with one atomic
// compare-and-swap on the gate's word and unpins with one atomic subtract;
// Fold counts those pins as pins of the version (Replica.pinned).
//
// The word: generation << 32 | open << 31 | pins. A reader's pin is a CAS
// from an open word to the same word plus one, so it fails if the gate
// closed or opened again (a new generation) since the reader looked: no
// pin lands on a closed gate, so once the replica has closed the gate the
// pins only go down, and a fold that sees none after the close knows no
// reader of the opening is left. The gate opens again only with no pins,
// which is why a reader may read the opening's fields (fd, size) without
// a lock for as long as it holds its pin.
//
// An opening's version can still expire (a reader that never ends keeps
// newer versions from being folded): Revoke then stops the gated readers'
// direct reads, as Version.Direct's revokers do for the others, and their
// reads go through Go, which adopts the transaction (Adopt) and fails it.
type Gate struct {
	mem *GateMem // in an anonymous mapping: C keeps pointers to it

	// mu serializes the openings and closings; it is taken only under
	// Replica.mu (read or write): lock order Replica.mu, Gate.mu.
	mu sync.Mutex
	v  atomic.Pointer[Version] // the version of the current or last opening
}

// GateMem is the memory the gate shares with C; its layout is the C
// layer's wl_gate (vfs/layer.h), which vfs checks at start.
type GateMem struct {
	Word     uint64 // generation << 32 | open << 31 | pins
	Revoked  int32  // set: the opening's readers read through Go
	Inflight int32  // direct reads of the opening's readers under way
	FD       int32  // the base file
	PageSize int32
	Size     int64 // the version's size in bytes
}

const (
	gateOpen = 1 << 31
	gatePins = gateOpen - 1
	gateGen  = 1 << 32
)

// NewGate maps a gate's memory; Free unmaps it.
func NewGate() (*Gate, error) {
	mem, err := syscall.Mmap(-1, 0, int(unsafe.Sizeof(GateMem{})), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("map a gate: %w", err)
	}
	return &Gate{mem: (*GateMem)(unsafe.Pointer(&mem[0]))}, nil
}

// Mem is the memory readers outside Go pin the gate through.
func (g *Gate) Mem() unsafe.Pointer { return unsafe.Pointer(g.mem) }

// Free unmaps the gate: no replica may have it attached, and no reader may
// hold a pointer to it.
func (g *Gate) Free() {
	syscall.Munmap(unsafe.Slice((*byte)(unsafe.Pointer(g.mem)), unsafe.Sizeof(GateMem{})))
	g.mem = nil
}

// open lets readers pin v, whose every page the base file fd holds; false
// when readers of the last opening are still in (it stays closed).
func (g *Gate) open(v *Version, fd int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	w := atomic.LoadUint64(&g.mem.Word)
	if w&gateOpen != 0 || w&gatePins != 0 {
		return w&gateOpen != 0 && g.v.Load() == v
	}
	// No reader holds the gate, and none can pin it before the store
	// below: the fields are the replica's to write.
	g.v.Store(v)
	m := g.mem
	atomic.StoreInt32(&m.FD, int32(fd))
	atomic.StoreInt32(&m.PageSize, int32(v.PageSize))
	atomic.StoreInt64(&m.Size, v.Size())
	atomic.StoreInt32(&m.Revoked, 0)
	atomic.StoreUint64(&g.mem.Word, (w&^(gateGen-1))+gateGen|gateOpen)
	return true
}

// close stops new pins; those taken stay until their readers unpin.
func (g *Gate) close() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	atomic.AndUint64(&g.mem.Word, ^uint64(gateOpen))
}

// holds says whether readers hold v through the gate.
func (g *Gate) holds(v *Version) bool {
	return g != nil && g.v.Load() == v && atomic.LoadUint64(&g.mem.Word)&gatePins != 0
}

// revoke stops the direct reads of v's gated readers, if v is the gate's:
// it returns once none is under way, and every later one goes through Go.
// The gate is closed first, so no reader can begin on v after it.
func (g *Gate) revoke(v *Version) {
	if g == nil || g.v.Load() != v {
		return
	}
	g.close()
	// Set before the wait, and a reader counts itself in before it reads
	// the flag (both sequentially consistent): either the wait sees the
	// read, or the read sees the flag.
	atomic.StoreInt32(&g.mem.Revoked, 1)
	for atomic.LoadInt32(&g.mem.Inflight) != 0 {
		runtime.Gosched() // a pread of a page or two
	}
}

// Adopt is how Go takes over a transaction a reader began at the gate
// (when it calls in during the transaction): it pins the opening's
// version for Go, to unpin as any other. The caller holds a gate pin, so
// the opening cannot have changed.
func (g *Gate) Adopt() *Version {
	v := g.v.Load()
	v.pins.Add(1)
	return v
}

// Pin and Unpin are the readers' side of the protocol, which the C layer
// implements too (layer.c: enterGate, leaveGate); Go's own tests use these.
func (g *Gate) Pin() bool {
	for w := atomic.LoadUint64(&g.mem.Word); w&gateOpen != 0 && w&gatePins != gatePins; w = atomic.LoadUint64(&g.mem.Word) {
		if atomic.CompareAndSwapUint64(&g.mem.Word, w, w+1) {
			return true
		}
	}
	return false
}

func (g *Gate) Unpin() { atomic.AddUint64(&g.mem.Word, ^uint64(0)) }

// AttachGate makes g the replica's gate, closed; the replica opens it at a
// Pin when the base file holds the newest version, and closes it (leaving
// it attached to nothing) at Close. A gate serves one replica at a time.
func (r *Replica) AttachGate(g *Gate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g.close()
	r.gate = g
}

// offerGate opens the gate on v when every page of v can be read from the
// base file, v being the newest version. The caller holds r.mu.
func (r *Replica) offerGate(v *Version) {
	g := r.gate
	if g == nil || v != r.head || v != r.root || atomic.LoadUint64(&g.mem.Word)&gateOpen != 0 {
		return
	}
	d, ok := v.directLocked()
	if !ok || !d.Page1 || d.Bits != nil || d.Limit != v.Size() {
		return
	}
	g.open(v, d.FD)
}

// pinned says whether a reader holds v in a way a fold must respect: in
// Go, or through the gate. The caller holds r.mu.
func (r *Replica) pinned(v *Version) bool {
	return (v.pins.Load() > 0 || r.gate.holds(v)) && !v.expired.Load()
}
