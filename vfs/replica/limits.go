package replica

import (
	"fmt"
	"strconv"
	"strings"
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
