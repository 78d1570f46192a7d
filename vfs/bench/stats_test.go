package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// --- statistics ---------------------------------------------------------

func median(xs []float64) float64 { return quantile(xs, 0.5) }

// quantile by linear interpolation between closest ranks.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

func durs(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = d.Seconds()
	}
	return out
}

// pairs are interleaved samples of A (walrust) and B (the baseline).
type pairs struct{ a, b []time.Duration }

// interleave takes n samples of each, alternating which goes first
// (A B, B A, A B, ...), so that a slow spell of the machine, or being
// second, does not favour either.
func interleave(n int, a, b func(i int) time.Duration) pairs {
	s := interleaveN(n, a, b)
	return pairs{s[0], s[1]}
}

// interleaveN is interleave for any number of sides: the order is reversed
// at every other sample (A B C, C B A, ...), so that every side is as often
// early as late.
func interleaveN(n int, sides ...func(i int) time.Duration) [][]time.Duration {
	out := make([][]time.Duration, len(sides))
	for i := range n {
		for k := range sides {
			j := k
			if i%2 == 1 {
				j = len(sides) - 1 - k
			}
			out[j] = append(out[j], sides[j](i))
		}
	}
	return out
}

// ratio is median(A)/median(B); noise is the spread (p25–p75) of the
// per-pair ratios.
func (p pairs) ratio() (med float64, noise string) {
	var rs []float64
	for i := range p.a {
		if p.b[i] > 0 {
			rs = append(rs, float64(p.a[i])/float64(p.b[i]))
		}
	}
	med = median(durs(p.a)) / median(durs(p.b))
	if len(rs) >= 4 {
		noise = fmt.Sprintf("(pairs p25–p75 %.2f–%.2f)", quantile(rs, 0.25), quantile(rs, 0.75))
	}
	return med, noise
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
}

func fmtSec(s float64) string { return fmtDur(time.Duration(s * float64(time.Second))) }

func meets(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}
