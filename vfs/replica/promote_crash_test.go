package replica

import (
	"context"
	"os"
	"testing"
)

// errCrash is the panic that stands for a crash at a promotion's step.
type errCrash struct{}

// TestPromoteCrashAfterRename: a promotion that crashes once the promoted
// file has taken the database's place leaves no replica log beside it.
// ResumePromote finds an unfinished promotion by the promoted file, gone
// after the rename; before, the log (as large as the database may be) was
// removed after the rename, and a crash there left it for good ("is not a
// walrust replica" at the next promote).
func TestPromoteCrashAfterRename(t *testing.T) {
	w := newWorld(t, 4096, true)
	w.InsertRows(10, 300)
	w.AdvanceRef()
	r, _ := w.bootstrapped()
	want := w.Image(w.Pub.TXID)
	if _, err := r.Export(context.Background(), PromotedPath(w.Path)); err != nil {
		t.Fatal(err)
	}
	testHook = func(stage string) {
		if stage == "promote:renamed" {
			panic(errCrash{})
		}
	}
	defer func() { testHook = nil }()
	func() {
		defer func() {
			if _, ok := recover().(errCrash); !ok {
				t.Fatal("the promotion did not reach its rename")
			}
		}()
		r.Promote()
	}()
	testHook = nil
	if _, err := ResumePromote(w.Path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(w.Path + "-replica-log"); err == nil {
		t.Fatalf("a promotion that crashed after its rename left %s-replica-log", w.Path)
	}
	if got := readAll(t, w.Path); string(got) != string(want) {
		t.Fatal("the promoted file is not the primary's")
	}
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
