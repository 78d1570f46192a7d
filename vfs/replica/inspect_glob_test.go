package replica

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/superfly/ltx"
)

// TestInspectHydrationPathIsNoPattern: the replica's path is a file name,
// not a glob pattern. InspectHydration globbed the log directory's path
// itself: a replica named db[1].sqlite showed no bootstrap under way (the
// pattern matched db1.sqlite's directory, not its own), db?.sqlite showed
// another replica's, and a name with an unclosed [ failed with "syntax
// error in pattern".
func TestInspectHydrationPathIsNoPattern(t *testing.T) {
	dir := t.TempDir()
	write := func(path string, txid uint64) {
		t.Helper()
		logDir := path + "-replica-log"
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			t.Fatal(err)
		}
		base := filepath.Join(logDir, fmt.Sprintf("%s%016x-%x", hydratePrefix, txid, 8192))
		ck := &checkpoint{path: base + checkpointExt, txid: ltx.TXID(txid), size: 8192, next: 1}
		if err := ck.write(); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"db[1].sqlite", "db?.sqlite", "db[.sqlite"} {
		path := filepath.Join(dir, name)
		write(path, 7)
		other := filepath.Join(dir, "dbX.sqlite") // matches db?.sqlite as a pattern
		write(other, 9)
		h, err := InspectHydration(path)
		if err != nil || h == nil || h.TXID != 7 {
			t.Errorf("%s: %+v, %v; want its own bootstrap, of TXID 7", name, h, err)
		}
	}
	// A name that matches another replica's, as a pattern, but has none.
	write(filepath.Join(dir, "dbY.none"), 9)
	h, err := InspectHydration(filepath.Join(dir, "db?.none"))
	if err != nil || h != nil {
		t.Errorf("a replica with no bootstrap: %+v, %v; want none", h, err)
	}
}
