package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walrust/walrust"
	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// nodeDefaultVFS is the Node program of TestNPMPackage, run in a directory
// where walrust-vfs and better-sqlite3 are installed: it loads walrust on a
// throwaway database, writes and reads an ordinary WAL database, tries a
// write to the replica, then prints the replica's row count each time it
// changes until it reaches want, writes the ordinary database once more,
// and exits when its stdin closes.
const nodeDefaultVFS = `
const fs = require('fs');
const Database = require('better-sqlite3');
const walrust = require('walrust-vfs');
const [replica, other, want] = process.argv.slice(1);
console.log('path', fs.existsSync(walrust.path) && walrust.path.endsWith('/walrust.so'));
walrust.load(new Database(':memory:')).close();
const o = new Database(other);
console.log('journal_mode', o.pragma('journal_mode = wal', { simple: true }));
o.exec('CREATE TABLE w (x); INSERT INTO w VALUES (1), (2), (3)');
const sum = () => o.prepare('SELECT sum(x) FROM w').pluck().get();
console.log('sum', sum());
const db = new Database(replica, { readonly: true });
try {
  db.exec("INSERT INTO t (v) VALUES ('x')");
  console.log('write succeeded');
} catch (e) {
  console.log('write failed:', e.message);
}
const count = db.prepare('SELECT count(*) FROM t').pluck();
const deadline = Date.now() + 30000;
let last = null;
(function tick() {
  const n = count.get();
  if (n !== last) {
    console.log(String(n));
    last = n;
  }
  if (n >= Number(want)) {
    o.exec('INSERT INTO w VALUES (4)');
    console.log('sum', sum());
    process.stdin.on('data', () => {}).on('end', () => process.exit(0));
    return;
  }
  if (Date.now() > deadline) {
    console.error('timed out at ' + last + ' rows');
    process.exit(1);
  }
  setTimeout(tick, 20);
})();
`

// TestNPMPackage installs the npm package make npm packs
// (build/dist/walrust-vfs-<VERSION>.tgz) with better-sqlite3 from the npm
// registry into a fresh directory, and runs Node with WALRUST_DEFAULT_VFS=1:
// new Database(replica, {readonly: true}) follows the store while an
// ordinary WAL database in the same process works, readable by the
// sqlite3 shell.
//
// Downloads are cached in build/npm-cache. better-sqlite3's prebuilt
// binaries come from GitHub, which CI may not reach: then npm builds it
// from source (minutes), and the test keeps the result as a local
// prebuild there, which later installs use.
func TestNPMPackage(t *testing.T) {
	node := testtool.Program(t, "node")
	npm := testtool.Program(t, "npm")
	tar := testtool.Program(t, "tar")
	testtool.Program(t, "sqlite3")
	version := strings.Fields(walrust.Version())[0]
	tgz := testtool.Built(t, filepath.Join("dist", "walrust-vfs-"+version+".tgz"))
	cache, err := filepath.Abs(filepath.Join(testtool.BuildDir(), "npm-cache"))
	if err != nil {
		t.Fatal(err)
	}
	prebuilds := filepath.Join(cache, "prebuilds")
	if err := os.MkdirAll(prebuilds, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	npmEnv := append(os.Environ(), "npm_config_cache="+cache,
		"npm_config_better_sqlite3_local_prebuilds="+prebuilds, "npm_config_update_notifier=false")
	install := exec.Command(npm, "install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error",
		tgz, "better-sqlite3@12")
	install.Dir, install.Env = dir, npmEnv
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm install: %v\n%s", err, out)
	}
	// Keep the binary npm installed as the local prebuild of this
	// better-sqlite3 for this Node, if there is none yet.
	name, err := exec.Command(node, "-p", `const p = require(require.resolve('better-sqlite3/package.json', {paths: [process.argv[1]]}));
		'better-sqlite3-v' + p.version + '-node-v' + process.versions.modules + '-' + process.platform + '-' + process.arch + '.tar.gz'`, dir).Output()
	if err != nil {
		t.Fatalf("prebuild name: %v", err)
	}
	if p := filepath.Join(prebuilds, strings.TrimSpace(string(name))); !exists(p) {
		tmp := p + ".tmp"
		if out, err := exec.Command(tar, "czf", tmp, "-C", filepath.Join(dir, "node_modules", "better-sqlite3"),
			"build/Release/better_sqlite3.node").CombinedOutput(); err != nil {
			t.Fatalf("keep the prebuild: %v\n%s", err, out)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}

	e := newWorld(t, 4096, false)
	other := filepath.Join(e.Dir, "other.db")
	const rows = 3
	cmd := exec.Command(node, "-e", nodeDefaultVFS, e.Path, other, fmt.Sprint(rows))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "WALRUST_DEFAULT_VFS=1", "WALRUST_INTERVAL=20ms",
		"WALRUST_REPLICAS="+e.Path+"="+e.Source)
	c := startClient(t, "node", cmd)
	c.expect(t, "path true")
	c.expect(t, "journal_mode wal")
	c.expect(t, "sum 6")
	c.followWhileWriting(t, e, other, rows)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
