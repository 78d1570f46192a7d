package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The examples under examples/ that operators copy: their syntax, and the
// walrust command lines they run, which must parse with walrust's flags.

const examples = "../../examples"

// readExample returns the text of examples/name.
func readExample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examples, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkCommandLine parses a walrust command line (without "walrust") the
// way walrust would, failing on a flag it does not know or on other than
// npos arguments.
func checkCommandLine(t *testing.T, where string, args []string, npos int) {
	t.Helper()
	if len(args) == 0 {
		t.Fatalf("%s: no subcommand", where)
	}
	c := lookup(args[0])
	if c == nil {
		t.Fatalf("%s: unknown subcommand %q", where, args[0])
	}
	fs := c.newFlagSet()
	c.flags(fs)
	pos, err := parseArgs(fs, args[1:])
	if err != nil {
		t.Fatalf("%s: walrust %s: %v", where, strings.Join(args, " "), err)
	}
	if len(pos) != npos {
		t.Fatalf("%s: walrust %s: arguments %q", where, strings.Join(args, " "), pos)
	}
}

// unitFile is a systemd unit: section → key → values, in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, text string) unitFile {
	t.Helper()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			if u[section] != nil {
				t.Fatalf("line %d: section [%s] twice", n, section)
			}
			u[section] = map[string][]string{}
		case strings.HasSuffix(line, "\\"):
			t.Fatalf("line %d: a continued line (keep each setting on one line)", n)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || !regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*$`).MatchString(strings.TrimSpace(k)) {
				t.Fatalf("line %d: not a setting of a section: %q", n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

func TestExampleSystemdUnit(t *testing.T) {
	text := readExample(t, "walrust-replicate.service")
	u := parseUnit(t, text)
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Fatalf("no [%s] section", s)
		}
	}
	svc := u["Service"]
	for k, want := range map[string]string{"Restart": "on-failure", "User": "walrust", "KillSignal": "SIGTERM"} {
		if got := svc[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %s", k, got, want)
		}
	}
	if len(svc["ExecStart"]) != 1 {
		t.Fatalf("ExecStart %q", svc["ExecStart"])
	}
	args := strings.Fields(svc["ExecStart"][0])
	if args[0] != "/usr/local/bin/walrust" || args[1] != "replicate" {
		t.Fatalf("ExecStart=%s", svc["ExecStart"][0])
	}
	checkCommandLine(t, "ExecStart", args[1:], 1)
	local := args[slices.Index(args, "--local")+1]
	if !slices.Contains(strings.Fields(strings.Join(svc["ReadWritePaths"], " ")), filepath.Dir(local)) {
		t.Errorf("ReadWritePaths %q leaves out the replica's directory %s", svc["ReadWritePaths"], filepath.Dir(local))
	}
	for _, f := range []string{"--log-format", "--metrics-addr"} {
		if !slices.Contains(args, f) {
			t.Errorf("ExecStart without %s", f)
		}
	}

	// systemd's own check, where there is one: it prints what it does not
	// accept (and still exits 0), and wants the program to exist.
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze is missing: the unit was only parsed")
		return
	}
	unit := filepath.Join(t.TempDir(), "walrust-replicate.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(text, "/usr/local/bin/walrust", binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// dockerInstruction is one instruction of a Dockerfile, continuations
// joined.
type dockerInstruction struct {
	line      int
	cmd, rest string
}

func parseDockerfile(t *testing.T, text string) []dockerInstruction {
	t.Helper()
	known := []string{"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK", "LABEL",
		"ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
	var out []dockerInstruction
	var cur strings.Builder
	start := 0
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "#") || trimmed == "" && cur.Len() == 0 {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if s, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(s + " ")
			if i == len(lines)-1 {
				t.Fatalf("line %d: continued past the end", start)
			}
			continue
		}
		cur.WriteString(trimmed)
		cmd, rest, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		if !slices.Contains(known, strings.ToUpper(cmd)) || cmd != strings.ToUpper(cmd) {
			t.Fatalf("line %d: unknown instruction %q", start, cmd)
		}
		if strings.TrimSpace(rest) == "" {
			t.Fatalf("line %d: %s without arguments", start, cmd)
		}
		out = append(out, dockerInstruction{start, cmd, strings.TrimSpace(rest)})
	}
	return out
}

// execForm parses an instruction's JSON array.
func execForm(t *testing.T, in dockerInstruction, s string) []string {
	t.Helper()
	var args []string
	if err := json.Unmarshal([]byte(s), &args); err != nil || len(args) == 0 {
		t.Fatalf("line %d: %s %s: not an exec form JSON array (%v)", in.line, in.cmd, s, err)
	}
	return args
}

func TestExampleDockerfile(t *testing.T) {
	text := readExample(t, "Dockerfile")
	ins := parseDockerfile(t, text)
	if len(ins) == 0 || ins[0].cmd != "FROM" {
		t.Fatal("the first instruction is not FROM")
	}
	stages := map[string]bool{}
	var final string // the last stage's image
	var user string
	var entry, cmd, health []string
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			f := strings.Fields(in.rest)
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				stages[f[2]] = true
			} else if len(f) != 1 {
				t.Fatalf("line %d: FROM %s", in.line, in.rest)
			}
			final, user = f[0], ""
		case "COPY":
			for _, f := range strings.Fields(in.rest) {
				if from, ok := strings.CutPrefix(f, "--from="); ok && !stages[from] {
					t.Errorf("line %d: COPY --from=%s: no such stage before it", in.line, from)
				}
			}
		case "USER":
			user = in.rest
		case "ENTRYPOINT":
			entry = execForm(t, in, in.rest)
		case "CMD":
			cmd = execForm(t, in, in.rest)
		case "HEALTHCHECK":
			_, c, ok := strings.Cut(in.rest, "CMD ")
			if !ok {
				t.Fatalf("line %d: HEALTHCHECK without CMD", in.line)
			}
			health = execForm(t, in, strings.TrimSpace(c))
		}
	}
	if len(stages) == 0 || !strings.HasPrefix(ins[0].rest, "golang:") {
		t.Error("no build stage on a golang image")
	}
	if !regexp.MustCompile(`^debian:[a-z]+-slim$`).MatchString(final) {
		t.Errorf("runs on %s, want debian:*-slim", final)
	}
	if !strings.Contains(text, "sqlite3") {
		t.Error("the image has no sqlite3")
	}
	if name, _, _ := strings.Cut(user, ":"); name == "" || name == "root" || name == "0" {
		t.Errorf("runs as user %q", user)
	}
	if len(entry) < 2 || entry[0] != "walrust" || entry[1] != "replicate" {
		t.Fatalf("ENTRYPOINT %q", entry)
	}
	checkCommandLine(t, "ENTRYPOINT and CMD", append(entry[1:], cmd...), 1)
	if len(health) < 2 || health[0] != "walrust" || health[1] != "status" || !slices.Contains(health, "--local") || !slices.Contains(health, "--max-lag") {
		t.Fatalf("HEALTHCHECK CMD %q", health)
	}
	checkCommandLine(t, "HEALTHCHECK", health[1:], 0)
}
