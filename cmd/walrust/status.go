package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/store"
)

var statusCommand = &command{
	name:    "status",
	args:    "SOURCE | --local DB",
	summary: "show what a store holds, or how fresh a local replica is",
	nargs:   anyArgs, // SOURCE, or none with --local
	about: `
Lists the LTX files of every level of SOURCE (file:///absolute/dir or
s3://bucket/prefix): per level, the file count, TXID range and bytes; the
newest snapshot; the newest TXID; and, from the newest file's header (only
its header is read), the time its data was captured, the page size and the
database size.

--json prints the same as one JSON object. TXIDs are 16-digit lower-case
hex strings, as in LTX file names (they sort as strings).

With --local DB instead of SOURCE, it reads the local replica DB's own
files, without opening it or asking the store: its source, the TXID its file
holds and when the primary committed it, when a follower last confirmed it
current, and which process follows it. It exits 1 when the replica is stale
— not confirmed current within --max-lag (default 1m) — and 0 otherwise: an
exec probe for cron or Kubernetes. While a first bootstrap=lazy bootstrap is
under way it shows how far it has come (from its last checkpoint, one every
32 MiB of the snapshot) and exits 1; with no replica at all it says so and
exits 1.`,
}

func init() {
	statusCommand.flags = func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
		var sf storeFlags
		sf.register(fs)
		asJSON := fs.Bool("json", false, "print JSON, for scripts")
		local := fs.String("local", "", "report on the local replica `DB` instead of a store")
		maxLag := new(time.Duration)
		durationVar(fs, maxLag, "max-lag", time.Minute, "with --local: stale (exit 1) when not confirmed current within `DURATION` (default 1m)")
		return func(ctx context.Context, e *env, args []string) error {
			lagSet := false
			fs.Visit(func(f *flag.Flag) { lagSet = lagSet || f.Name == "max-lag" })
			switch {
			case *local != "" && len(args) > 0:
				return usagef("give SOURCE or --local DB, not both")
			case *local == "" && lagSet:
				return usagef("--max-lag is for --local DB: the status of a store has no lag")
			case *maxLag < 0:
				return usagef("--max-lag %s: must not be negative", *maxLag)
			case *local != "":
				return localStatus(e, *local, *maxLag, *asJSON)
			case len(args) != 1:
				return usagef("want one SOURCE (file:///absolute/dir or s3://bucket/prefix), or --local DB")
			}
			st, err := openStore(ctx, args[0], &sf, false)
			if err != nil {
				return err
			}
			s, err := readStatus(ctx, st)
			if err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(e.stdout, s)
			}
			s.print(e.stdout, time.Now())
			return nil
		}
	}
}

// status is what `walrust status` reports.
type status struct {
	Source       string        `json:"source"`
	Files        int           `json:"files"`
	Bytes        int64         `json:"bytes"`
	Levels       []levelStatus `json:"levels"` // levels that hold files
	Snapshot     *fileStatus   `json:"snapshot"`
	NewestTXID   ltx.TXID      `json:"newest_txid"`
	NewestFile   *fileStatus   `json:"newest_file"`
	Timestamp    *time.Time    `json:"timestamp"` // data time, from the newest file's header
	PageSize     uint32        `json:"page_size"`
	Commit       uint32        `json:"commit"` // database size in pages
	DatabaseSize int64         `json:"database_size"`
}

type levelStatus struct {
	Level   int      `json:"level"`
	Files   int      `json:"files"`
	MinTXID ltx.TXID `json:"min_txid"`
	MaxTXID ltx.TXID `json:"max_txid"`
	Bytes   int64    `json:"bytes"`
}

type fileStatus struct {
	Level   int      `json:"level"`
	Name    string   `json:"name"`
	MinTXID ltx.TXID `json:"min_txid"`
	MaxTXID ltx.TXID `json:"max_txid"`
	Size    int64    `json:"size"`
}

func fileStatusOf(f store.FileInfo) *fileStatus {
	return &fileStatus{Level: f.Level, Name: f.Name(), MinTXID: f.MinTXID, MaxTXID: f.MaxTXID, Size: f.Size}
}

// readStatus lists every level (one list request each) and reads the
// header of the newest file.
func readStatus(ctx context.Context, st store.Reader) (*status, error) {
	s := &status{Source: st.String(), Levels: []levelStatus{}}
	all, err := store.ListAll(ctx, st)
	if err != nil {
		return nil, err
	}
	for i := 0; i < len(all); {
		level := all[i].Level
		j := i
		for j < len(all) && all[j].Level == level {
			j++
		}
		files := all[i:j]
		ls := levelStatus{Level: level, Files: len(files), MinTXID: files[0].MinTXID}
		for _, f := range files {
			ls.MaxTXID = max(ls.MaxTXID, f.MaxTXID)
			ls.Bytes += f.Size
		}
		s.Levels = append(s.Levels, ls)
		s.Files += ls.Files
		s.Bytes += ls.Bytes
		if level == store.SnapshotLevel {
			s.Snapshot = fileStatusOf(files[len(files)-1])
		}
		i = j
	}
	if len(all) == 0 {
		return s, nil
	}
	// Newest first; among files that reach the same TXID, the lowest level.
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].MaxTXID != all[j].MaxTXID {
			return all[i].MaxTXID > all[j].MaxTXID
		}
		return all[i].Level < all[j].Level
	})
	s.NewestTXID = all[0].MaxTXID
	// The newest file may be removed (retention) between the list and the
	// read; then the next one tells the time.
	var errs []error
	for _, f := range all[:min(3, len(all))] {
		hdr, err := readHeader(ctx, st, f)
		if errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
			continue
		} else if err != nil {
			return nil, err
		}
		ts := time.UnixMilli(hdr.Timestamp).UTC()
		s.NewestFile, s.Timestamp = fileStatusOf(f), &ts
		s.PageSize, s.Commit = hdr.PageSize, hdr.Commit
		s.DatabaseSize = int64(hdr.PageSize) * int64(hdr.Commit)
		return s, nil
	}
	return nil, fmt.Errorf("read the newest file's header: %w", errors.Join(errs...))
}

// readHeader reads the 100-byte LTX header of f, and nothing more.
func readHeader(ctx context.Context, st store.Reader, f store.FileInfo) (ltx.Header, error) {
	rc, err := st.Open(ctx, f)
	if err != nil {
		return ltx.Header{}, err
	}
	defer rc.Close()
	hdr, _, err := ltx.PeekHeader(io.LimitReader(rc, ltx.HeaderSize))
	if err != nil {
		return ltx.Header{}, fmt.Errorf("read header of %s: %w", f, err)
	}
	return hdr, nil
}

func (s *status) print(w io.Writer, now time.Time) {
	fmt.Fprintf(w, "Source:     %s\n", s.Source)
	if s.Files == 0 {
		fmt.Fprintln(w, "No LTX files.")
		return
	}
	for _, l := range s.Levels {
		fmt.Fprintf(w, "Level %d:    %-10s TXID %d-%d (%s-%s), %s\n", l.Level, plural(l.Files, "file", "files"),
			l.MinTXID, l.MaxTXID, l.MinTXID, l.MaxTXID, formatBytes(l.Bytes))
	}
	if s.Snapshot != nil {
		fmt.Fprintf(w, "Snapshot:   L%d/%s (TXID %d, %s)\n", s.Snapshot.Level, s.Snapshot.Name, s.Snapshot.MaxTXID, formatBytes(s.Snapshot.Size))
	} else {
		fmt.Fprintln(w, "Snapshot:   none")
	}
	fmt.Fprintf(w, "Newest:     TXID %d (%s)", s.NewestTXID, s.NewestTXID)
	if s.NewestFile != nil {
		fmt.Fprintf(w, " in L%d/%s", s.NewestFile.Level, s.NewestFile.Name)
	}
	fmt.Fprintln(w)
	if s.Timestamp != nil {
		fmt.Fprintf(w, "Data time:  %s (%s)\n", s.Timestamp.Format(ltx.RFC3339Milli), formatAge(*s.Timestamp, now))
		fmt.Fprintf(w, "Database:   %s of %d bytes (%s)\n", plural(int(s.Commit), "page", "pages"), s.PageSize, formatBytes(s.DatabaseSize))
	}
}
