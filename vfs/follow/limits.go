package follow

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/walrust/walrust/vfs/internal/ltxguard"
	"github.com/walrust/walrust/vfs/store"
)

// ParseSize reads a size as the configuration spells it: a number of
// bytes with an optional unit, decimal (KB, MB, GB, TB) or binary (KiB,
// MiB, GiB, TiB): "500GB", "1TiB", "1073741824".
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	// Longest first, so that "b" matches only a plain count of bytes.
	for _, u := range []struct {
		suffix string
		mult   int64
	}{
		{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"b", 1},
	} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (examples: 500GB, 1TiB, 1073741824)", s)
	}
	return n * mult, nil
}

// heldLimit is how much the log may hold for versions that readers keep
// from being folded: Options.MaxHeld, or by default the larger of
// DefaultMaxHeld and the database's size.
func (f *Follower) heldLimit() int64 {
	if f.maxHeld > 0 {
		return f.maxHeld
	}
	if h := f.r.Head(); h != nil {
		return max(DefaultMaxHeld, h.Size())
	}
	return DefaultMaxHeld
}

// DefaultMaxHeld is the least a replica lets readers hold by default.
const DefaultMaxHeld int64 = 1 << 30

// want is what a listed file must be: what its name says, within the
// replica's maximum size.
func (f *Follower) want(fi store.FileInfo) ltxguard.Want {
	return ltxguard.Want{
		MinTXID: fi.MinTXID, MaxTXID: fi.MaxTXID,
		Snapshot: fi.Level == store.SnapshotLevel, MaxSize: f.maxSize, Size: fi.Size,
	}
}
