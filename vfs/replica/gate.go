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
// since the last transaction. It is open on the newest version, with what
// Version.Direct tells of it (which pages the base file holds as of the
// version) and page 1 as the version serves it: usually the base file
// holds the version whole, and a transaction reads every page from it;
// while a reader holds older versions unfolded, the pages they changed are
// read through Go.
//
// The replica opens the gate on the newest version at a Pin (so the first
// transaction after a change calls in and the ones after it do not), and
// closes it, under Replica.mu held for writing, before anything makes that
// version not the newest or the file no longer its base: a publish, an
// install, a hydration given up, Close. Fold counts the gate's pins as
// pins of their version (Replica.pinned).
//
// An opening lives in one of gateSlots slots, and at most one slot is
// open: the one GateMem.Current names. A reader pins it with one atomic
// compare-and-swap on the slot's word and unpins with one atomic subtract.
// The word: generation << 32 | open << 31 | pins. The CAS goes from an
// open word to the same word plus one, so it fails if the slot closed or
// opened again (a new generation) since the reader looked: no pin lands on
// a closed slot, so once the replica has closed it the pins only go down,
// and a fold that sees none after the close knows no reader of the opening
// is left. A slot opens again only with no pins, which is why a reader may
// read the opening's fields without a lock for as long as it holds its
// pin. The other slots let the gate open on a new version while readers
// of older openings (a long transaction) are still in.
//
// An opening's version can still expire (a reader that never ends keeps
// newer versions from being folded): revoke then stops the gated readers'
// direct reads, as Version.Direct's revokers do for the others, and their
// reads go through Go, which adopts the transaction (Adopt) and fails it.
type Gate struct {
	mem *GateMem // in an anonymous mapping: C keeps pointers to it

	// mu serializes the openings and closings; it is taken only under
	// Replica.mu (read or write): lock order Replica.mu, Gate.mu.
	mu sync.Mutex
	v  [gateSlots]atomic.Pointer[Version] // each slot's current or last opening
}

// gateSlots is how many openings can have readers at once.
const gateSlots = 4

// GateMem is the memory the gate shares with C; its layout is the C
// layer's wl_gate (vfs/layer.h), which vfs checks at start.
type GateMem struct {
	Current int32 // the slot that may be open
	_       int32
	Slots   [gateSlots]GateSlot
	// Page1 is each slot's page 1 as its version serves it, when the
	// base file's is not (GateSlot.Page1 == 2). Apart from the slots, so
	// that a replica that never needs them never touches their memory.
	Page1 [gateSlots][maxPageSize]byte
}

// GateSlot is one opening. Past Inflight, its fields are written before
// it opens and read by a reader only while it holds a pin.
type GateSlot struct {
	Word     uint64 // generation << 32 | open << 31 | pins
	Revoked  int32  // set: the opening's readers read through Go
	Inflight int32  // direct reads of the opening's readers under way
	FD       int32  // the base file
	PageSize int32
	Size     int64          // the version's size in bytes
	Limit    int64          // bytes of it the base file can serve (DirectRead.Limit)
	Bits     unsafe.Pointer // DirectRead.Bits: pages to read through Go; nil: none
	Pages    uint32         // pages Bits covers
	Page1    int32          // 1: the base file's page 1 is the version's as served; 2: GateMem.Page1 is
}

// maxPageSize is SQLite's largest page size.
const maxPageSize = 65536

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

// current is the slot that may be open.
func (g *Gate) current() *GateSlot {
	return &g.mem.Slots[atomic.LoadInt32(&g.mem.Current)]
}

// isOpen says whether readers can pin the gate now.
func (g *Gate) isOpen() bool { return atomic.LoadUint64(&g.current().Word)&gateOpen != 0 }

// open lets readers pin v, read as d says; page 1 comes from the base
// file when d says so, else from the slot's buffer, which page1 fills
// (false: it could not). It does nothing while the gate is open, or while
// every slot has readers (it stays closed).
func (g *Gate) open(v *Version, d DirectRead, page1 func([]byte) bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.isOpen() {
		return
	}
	i := 0
	for i < gateSlots && atomic.LoadUint64(&g.mem.Slots[i].Word)&gatePins != 0 {
		i++
	}
	if i == gateSlots {
		return
	}
	// No reader holds slot i, and none can pin it before the store
	// below: the opening is the replica's to write.
	s := &g.mem.Slots[i]
	s.Page1 = 1
	if !d.Page1 {
		if v.PageSize > maxPageSize || !page1(g.mem.Page1[i][:v.PageSize]) {
			return
		}
		s.Page1 = 2
	}
	g.v[i].Store(v)
	s.FD, s.PageSize, s.Size, s.Limit = int32(d.FD), int32(v.PageSize), v.Size(), d.Limit
	s.Bits, s.Pages = d.Bits, d.Pages
	atomic.StoreInt32(&s.Revoked, 0)
	// The release that publishes the fields above to the reader whose pin
	// (an acquiring CAS) reads this word; then readers are sent to it.
	w := atomic.LoadUint64(&s.Word)
	atomic.StoreUint64(&s.Word, (w&^(gateGen-1))+gateGen|gateOpen)
	atomic.StoreInt32(&g.mem.Current, int32(i))
}

// close stops new pins; those taken stay until their readers unpin.
func (g *Gate) close() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	i := atomic.LoadInt32(&g.mem.Current)
	if atomic.AndUint64(&g.mem.Slots[i].Word, ^uint64(gateOpen))&gatePins == 0 {
		// No reader holds the opening, and none can pin it from here
		// on: let its version (and what it keeps) go.
		g.v[i].Store(nil)
	}
}

// holds says whether readers hold v through the gate.
func (g *Gate) holds(v *Version) bool {
	if g == nil {
		return false
	}
	for i := range gateSlots {
		if g.v[i].Load() == v && atomic.LoadUint64(&g.mem.Slots[i].Word)&gatePins != 0 {
			return true
		}
	}
	return false
}

// revoke stops the direct reads of v's gated readers: it returns once
// none is under way, and every later one goes through Go. The gate is
// closed first, so no reader can begin on v after it.
func (g *Gate) revoke(v *Version) {
	if g == nil {
		return
	}
	g.close()
	for i := range gateSlots {
		if g.v[i].Load() != v {
			continue
		}
		// Set before the wait, and a reader counts itself in before it
		// reads the flag (both sequentially consistent): either the wait
		// sees the read, or the read sees the flag.
		s := &g.mem.Slots[i]
		atomic.StoreInt32(&s.Revoked, 1)
		for atomic.LoadInt32(&s.Inflight) != 0 {
			runtime.Gosched() // a pread of a page or two
		}
	}
}

// Adopt is how Go takes over a transaction a reader began at slot i of
// the gate (when it calls in during the transaction): it pins the
// opening's version for Go, to unpin as any other. The caller holds a pin
// of the slot, so its opening cannot have changed.
func (g *Gate) Adopt(slot int) *Version {
	v := g.v[slot].Load()
	v.pins.Add(1)
	return v
}

// Pin and Unpin are the readers' side of the protocol, which the C layer
// implements too (layer.c: enterGate, leaveGate); Go's own tests use
// these. Pin returns the slot pinned, or -1 when the gate is closed.
func (g *Gate) Pin() int {
	i := atomic.LoadInt32(&g.mem.Current)
	s := &g.mem.Slots[i]
	for w := atomic.LoadUint64(&s.Word); w&gateOpen != 0 && w&gatePins != gatePins; w = atomic.LoadUint64(&s.Word) {
		if atomic.CompareAndSwapUint64(&s.Word, w, w+1) {
			return int(i)
		}
	}
	return -1
}

func (g *Gate) Unpin(slot int) { atomic.AddUint64(&g.mem.Slots[slot].Word, ^uint64(0)) }

// AttachGate makes g the replica's gate, closed; the replica opens it at a
// Pin when the base file holds the newest version, and closes it (leaving
// it attached to nothing) at Close. A gate serves one replica at a time.
func (r *Replica) AttachGate(g *Gate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g.close()
	r.gate = g
}

// offerGate opens the gate on v, the newest version, when its pages can be
// read from the base file (Version.Direct). The caller holds r.mu.
func (r *Replica) offerGate(v *Version) {
	g := r.gate
	if g == nil || v != r.head || g.isOpen() {
		return
	}
	d, ok := v.directLocked()
	if !ok {
		return
	}
	g.open(v, d, func(buf []byte) bool {
		if v.readPage(1, buf) != nil {
			return false // the reader that calls in will say why
		}
		v.patchHeader(buf, 0)
		return true
	})
}

// held says whether a reader holds v, in Go or through the gate. The
// caller holds r.mu.
func (r *Replica) held(v *Version) bool { return v.pins.Load() > 0 || r.gate.holds(v) }

// pinned says whether a reader holds v in a way a fold must respect (an
// expired version's readers read nothing more of it).
func (r *Replica) pinned(v *Version) bool { return r.held(v) && !v.expired.Load() }
