package replica

import (
	"hash"
	"reflect"
	"unsafe"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/internal/crc64iso"
)

// fastFileChecksum gives a new decoder crc64iso's hasher for the file
// checksum in place of its own, and reports whether it could.
//
// The ltx decoder computes the file checksum (CRC-64/ISO over every
// decoded byte) with hash/crc64, about 1 GB/s: half of a bootstrap's CPU
// time went there. crc64iso computes the same CRC (its tests compare the
// two) several times faster. ltx has no option to choose the hasher, and
// its field is unexported, so it is set here through reflection, before the
// decoder has hashed anything; its type is checked first. If a newer ltx
// renames or retypes the field, nothing changes but the speed:
// TestFastFileChecksum fails, so that it is noticed.
func fastFileChecksum(dec *ltx.Decoder) bool {
	f := reflect.ValueOf(dec).Elem().FieldByName("hash")
	if !f.IsValid() || f.Type() != reflect.TypeFor[hash.Hash64]() {
		return false
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().Set(reflect.ValueOf(crc64iso.New()))
	return true
}
