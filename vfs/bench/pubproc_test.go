package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/superfly/ltx"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// procSample is what /proc says a publisher process has used so far.
type procSample struct {
	cpu   time.Duration // on-CPU time of every thread (schedstat; Go keeps its threads)
	wrote int64         // write_bytes: bytes sent to the disk
	read  int64         // rchar: bytes read through read(2) and friends
}

func (a procSample) sub(b procSample) procSample {
	return procSample{cpu: a.cpu - b.cpu, wrote: a.wrote - b.wrote, read: a.read - b.read}
}

// sampleProc reads /proc/<pid>/io and the schedstat of each thread.
func sampleProc(pid int) (procSample, error) {
	var s procSample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "write_bytes":
			s.wrote = n
		case "rchar":
			s.read = n
		}
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return s, err
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, task.Name()))
		if err != nil {
			continue // a thread that just ended
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			s.cpu += time.Duration(ns)
		}
	}
	return s, nil
}

// publisherProc is a publisher child process: walrust publish or
// litestream replicate.
type publisherProc struct {
	cmd    *exec.Cmd
	stderr testtool.Buffer // written by the process's copier, read by the bench
}

func startPublisher(name string, args ...string) (*publisherProc, error) {
	p := &publisherProc{cmd: exec.Command(name, args...)}
	p.cmd.Stderr = &p.stderr
	p.cmd.Stdout = io.Discard
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	return p, nil
}

// stop ends the process with SIGTERM (SIGKILL after 10 s).
func (p *publisherProc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// markerOf is the text a benchmark commit leaves in the row it writes:
// whoever finds it in a published file knows that commit, and every
// earlier one, is in the store.
func markerOf(seq int) string { return fmt.Sprintf("SEQ%010dQES", seq) }

// storeWatcher polls a store's level-0 directory every few milliseconds
// and records, for each marker, when the first file holding it (or a
// later one) appeared.
type storeWatcher struct {
	dir  string
	stop chan struct{}
	done sync.WaitGroup

	mu      sync.Mutex // guards the fields below
	files   map[string]bool
	maxSeq  int
	visible map[int]time.Time // seq → when a file with seq or a later one appeared
	err     error
}

func watchStore(root string) *storeWatcher {
	w := &storeWatcher{dir: filepath.Join(root, "ltx", "0"), stop: make(chan struct{}),
		files: map[string]bool{}, visible: map[int]time.Time{}, maxSeq: -1}
	w.done.Add(1)
	go w.run()
	return w
}

func (w *storeWatcher) run() {
	defer w.done.Done()
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		entries, _ := os.ReadDir(w.dir)
		now := time.Now()
		for _, e := range entries {
			name := e.Name()
			w.mu.Lock()
			seen := w.files[name]
			w.mu.Unlock()
			if seen || !strings.HasSuffix(name, ".ltx") {
				continue
			}
			seq, err := maxMarker(filepath.Join(w.dir, name))
			if err != nil {
				continue // being written, or already compacted away: next poll
			}
			w.mu.Lock()
			w.files[name] = true
			for s := w.maxSeq + 1; s <= seq; s++ {
				w.visible[s] = now
			}
			w.maxSeq = max(w.maxSeq, seq)
			w.mu.Unlock()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *storeWatcher) close() {
	close(w.stop)
	w.done.Wait()
}

func (w *storeWatcher) visibleAt(seq int) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.visible[seq]
	return at, ok
}

// maxMarker decodes an LTX file and returns the highest marker its pages
// hold (-1 for none).
func maxMarker(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	dec := ltx.NewDecoder(bufio.NewReader(f))
	if err := dec.DecodeHeader(); err != nil {
		return 0, err
	}
	buf := make([]byte, dec.Header().PageSize)
	best := -1
	for {
		var hdr ltx.PageHeader
		if err := dec.DecodePage(&hdr, buf); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return 0, err
		}
		for b := buf; ; {
			i := bytes.Index(b, []byte("SEQ"))
			if i < 0 || i+16 > len(b) {
				break
			}
			if string(b[i+13:i+16]) == "QES" {
				if n, err := strconv.Atoi(string(b[i+3 : i+13])); err == nil {
					best = max(best, n)
				}
			}
			b = b[i+3:]
		}
	}
	if err := dec.Close(); err != nil {
		return 0, err
	}
	return best, nil
}
