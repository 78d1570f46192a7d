package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// TestLogFormatJSON: with WALRUST_LOG_FORMAT=json the extension's log on
// stderr is one JSON object per line (here, the sqlite3 shell opening a
// replica of a store that has no snapshot yet).
func TestLogFormatJSON(t *testing.T) {
	ext := testtool.Extension(t)
	sqlite3 := testtool.Program(t, "sqlite3")
	dir := t.TempDir()
	uri := "file:" + filepath.Join(t.TempDir(), "replica.db") + "?vfs=walrust&source=file://" + dir + "&timeout=300ms"
	cmd := exec.Command(sqlite3, "-batch")
	cmd.Env = append(os.Environ(), "WALRUST_LOG=info", "WALRUST_LOG_FORMAT=json")
	cmd.Stdin = strings.NewReader(".load " + ext + "\n.open '" + uri + "'\nSELECT count(*) FROM sqlite_master;\n")
	out, _ := cmd.CombinedOutput()
	var logged int
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(l, "{") {
			if strings.HasPrefix(l, "time=") {
				t.Errorf("a text log line: %q", l)
			}
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q (%v)", l, err)
		}
		if m["time"] == nil || m["level"] == nil || m["msg"] == nil || m["component"] != "walrust" {
			t.Errorf("missing time, level, msg or component: %q", l)
		}
		logged++
	}
	if logged == 0 {
		t.Fatalf("no JSON log line; output:\n%s", out)
	}
}
