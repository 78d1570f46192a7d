package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/walrust/walrust/vfs/testkit/testtool"
)

// TestVersion: walrust version, walrust --version and walrust-shell
// --version print the same version: VERSION's release, and, as make
// builds them in a git checkout, the checkout's commit.
func TestVersion(t *testing.T) {
	release, err := os.ReadFile("../../VERSION")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimSpace(string(release))
	if out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		want += " (" + strings.TrimSpace(string(out))
	}
	var got []string
	for _, run := range [][]string{
		{testtool.Built(t, "walrust"), "version"},
		{testtool.Built(t, "walrust"), "--version"},
		{testtool.Built(t, "walrust-shell"), "--version"},
	} {
		out, err := exec.Command(run[0], run[1:]...).Output()
		if err != nil {
			t.Fatalf("%s: %v", strings.Join(run, " "), err)
		}
		line := strings.TrimSpace(string(out))
		_, v, _ := strings.Cut(line, " ")
		if !strings.HasPrefix(v, want) {
			t.Errorf("%s printed %q; want the version to start with %q", strings.Join(run, " "), line, want)
		}
		got = append(got, v)
	}
	if got[0] != got[1] || got[1] != got[2] {
		t.Errorf("the programs disagree on the version: %q", got)
	}
}
