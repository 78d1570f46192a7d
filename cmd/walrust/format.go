package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// formatBytes is a size for people: 512 B, 12.1 KB, 3.4 MB (powers of 1000).
func formatBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n) / unit
	suffixes := []string{"KB", "MB", "GB", "TB"}
	i := 0
	for f >= unit && i < len(suffixes)-1 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", f, suffixes[i])
}

// formatAge is how long ago t was, to the second.
func formatAge(t, now time.Time) string {
	d := now.Sub(t).Round(time.Second)
	if d < 0 {
		return fmt.Sprintf("%s in the future", -d)
	}
	return fmt.Sprintf("%s ago", d)
}

// formatDuration is a flag's duration without Go's empty units: 24h, 1h30m,
// 90s, 50ms (not 24h0m0s).
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// writeJSON is --json's output: v as one indented JSON object.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
