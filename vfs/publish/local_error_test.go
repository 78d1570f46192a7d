package publish

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// A publish whose file reached the store and whose position was saved, but
// whose pages could not be written into the local image (a full disk: the
// image grows with the database), has lost nothing: the position names the
// redo file that brings the image to it. Once there is room, the publisher
// must finish that and go on with level-0 files, not start over with a
// snapshot (which sends every replica the whole database again), and must
// not delete the redo file that the saved position names meanwhile.
func TestPublishImageWriteFails(t *testing.T) {
	for _, mode := range []string{"delete", "wal"} {
		t.Run(mode, func(t *testing.T) {
			work := t.TempDir()
			p, st, pub := snapshottedMode(t, mode, work)

			// The image cannot be opened for writing: a local error, as
			// ENOSPC or EIO part way through it would be.
			image := filepath.Join(work, imageName(1))
			aside := filepath.Join(t.TempDir(), "image")
			if err := os.Rename(image, aside); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(image, 0o755); err != nil {
				t.Fatal(err)
			}
			insertRows(t, p, 100, 50, 100)
			if _, err := pub.PublishOnce(context.Background()); err == nil {
				t.Fatal("a publish whose image could not be written did not fail")
			} else {
				t.Logf("publish: %v", err)
			}
			// Still no room at the next publish: it fails again, and
			// publishes nothing else meanwhile.
			if res, err := pub.PublishOnce(context.Background()); err == nil {
				t.Fatalf("with the image still unwritable, a publish succeeded: %+v", res)
			}
			if _, err := os.Stat(filepath.Join(work, redoName(2))); err != nil {
				t.Fatalf("the redo file the saved position names is gone: %v", err)
			}

			// Room again.
			if err := os.Remove(image); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(aside, image); err != nil {
				t.Fatal(err)
			}
			insertRows(t, p, 150, 10, 100)
			res := publishOnce(t, pub)
			expect(t, res, true, false, 3)
			verifyStore(t, p, st, res)
		})
	}
}

// A snapshot at a new TXID is announced by a level-0 file of every page,
// written to the work directory as the pending file: once uploaded it is
// of no use, and must not stay there, as large as the database, until the
// next change (on a disk that may just have been full: a local error is one
// way to get such a snapshot).
func TestAnnounceLeavesNoPendingFile(t *testing.T) {
	p, st, pub := snapshotted(t, "")
	insertRows(t, p, 100, 10, 200)
	expect(t, publishOnce(t, pub), true, false, 2)
	pub.Close()

	work := t.TempDir()
	pub = publisherFor(t, p, st, work)
	expect(t, publishOnce(t, pub), true, true, 3)
	if _, err := os.Stat(filepath.Join(work, pendingFile)); err == nil {
		t.Fatalf("the announcing file stays in the work directory as %s", pendingFile)
	}
	expect(t, publishOnce(t, pub), false, false, 3)
}

// A publish whose file reached the store but whose position could not be
// saved (a full disk, too many open files) has lost nothing either: the
// publisher knows what it uploaded. It must save the position once it can,
// and go on with level-0 files: it took the store for one ahead of its
// position and wrote a snapshot (and a level-0 file of every page).
func TestPublishPositionSaveFails(t *testing.T) {
	for _, mode := range []string{"delete", "wal"} {
		t.Run(mode, func(t *testing.T) {
			work := t.TempDir()
			p, st, pub := snapshottedMode(t, mode, work)

			// The position's temporary copy cannot be created: a local
			// error, as ENOSPC would be.
			tmp := filepath.Join(work, positionFile+".tmp")
			insertRows(t, p, 100, 50, 100)
			for range 2 { // a failed publish's tidy removes the directory
				if err := os.Mkdir(tmp, 0o755); err != nil {
					t.Fatal(err)
				}
				if res, err := pub.PublishOnce(context.Background()); err == nil {
					t.Fatalf("a publish whose position could not be saved succeeded: %+v", res)
				} else {
					t.Logf("publish: %v", err)
				}
			}
			os.Remove(tmp)
			insertRows(t, p, 150, 10, 100)
			res := publishOnce(t, pub)
			expect(t, res, true, false, 3)
			verifyStore(t, p, st, res)

			// And a restart finds the position where it is.
			pub.Close()
			pub = publisherFor(t, p, st, work)
			insertRows(t, p, 160, 10, 100)
			res = publishOnce(t, pub)
			expect(t, res, true, false, 4)
			verifyStore(t, p, st, res)
		})
	}
}
