package main

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"strings"
	"testing"
)

const modesQuery = `SELECT id, name, score, avatar, 'a,b "q"' || char(10) || 'x<&>' AS odd FROM users WHERE id < 3 ORDER BY id`

// TestModeJSON: -json prints each statement's rows as a JSON array of
// objects that parses: numbers as numbers, NULL as null, blobs as hex.
func TestModeJSON(t *testing.T) {
	e := newEnv(t)
	r := e.query(modesQuery+"; SELECT count(*) AS n FROM orders; SELECT 1 WHERE 0", "-json")
	wantOK(t, r)
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.UseNumber()
	var users []map[string]any
	if err := dec.Decode(&users); err != nil {
		t.Fatalf("first statement's JSON: %v\n%s", err, r.stdout)
	}
	want := []map[string]any{
		{"id": json.Number("1"), "name": "ada", "score": json.Number("9.5"), "avatar": "00ff10", "odd": "a,b \"q\"\nx<&>"},
		{"id": json.Number("2"), "name": "grace", "score": nil, "avatar": nil, "odd": "a,b \"q\"\nx<&>"},
	}
	if len(users) != len(want) {
		t.Fatalf("users: %v, want %v", users, want)
	}
	for i := range want {
		for k, v := range want[i] {
			if users[i][k] != v {
				t.Errorf("row %d %s = %#v, want %#v", i, k, users[i][k], v)
			}
		}
	}
	var counts []struct{ N int }
	if err := dec.Decode(&counts); err != nil || len(counts) != 1 || counts[0].N != 3 {
		t.Fatalf("second statement: %v, %v\n%s", counts, err, r.stdout)
	}
	if dec.More() {
		t.Errorf("a statement with no rows printed something:\n%s", r.stdout)
	}
}

func TestJSONValue(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{nil, "null"}, {int64(-7), "-7"}, {3.0, "3.0"}, {1e20, "1e+20"}, {math.Inf(1), "null"}, {math.NaN(), "null"},
		{true, "1"}, {[]byte{0xab, 1}, `"ab01"`}, {"<\"é\">", `"<\"é\">"`},
	} {
		if got := jsonValue(tc.v); got != tc.want {
			t.Errorf("jsonValue(%#v) = %s, want %s", tc.v, got, tc.want)
		}
		if !json.Valid([]byte(jsonValue(tc.v))) {
			t.Errorf("jsonValue(%#v) = %s is not JSON", tc.v, jsonValue(tc.v))
		}
	}
}

// TestModeList: -list separates values with '|'; -noheader leaves the
// column names out.
func TestModeList(t *testing.T) {
	e := newEnv(t)
	r := e.query("SELECT id, name, score FROM users ORDER BY id", "-list", "-noheader")
	wantOK(t, r)
	wantOutput(t, r.stdout, "1|ada|9.5\n2|grace|\n3|linus|7.0\n")
	r = e.query("SELECT id, name FROM users WHERE id = 1", "-list")
	wantOK(t, r)
	wantOutput(t, r.stdout, "id|name\n1|ada\n")
}

// TestModeCSV: -csv round-trips through encoding/csv, header first.
func TestModeCSV(t *testing.T) {
	e := newEnv(t)
	r := e.query(modesQuery, "-csv")
	wantOK(t, r)
	recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	want := [][]string{
		{"id", "name", "score", "avatar", "odd"},
		{"1", "ada", "9.5", "x'00ff10'", "a,b \"q\"\nx<&>"},
		{"2", "grace", "", "", "a,b \"q\"\nx<&>"},
	}
	if len(recs) != len(want) {
		t.Fatalf("records %q, want %q", recs, want)
	}
	for i := range want {
		if strings.Join(recs[i], "\x00") != strings.Join(want[i], "\x00") {
			t.Errorf("record %d = %q, want %q", i, recs[i], want[i])
		}
	}
	if !strings.HasSuffix(r.stdout, "\r\n") {
		t.Errorf("records do not end in CRLF: %q", r.stdout)
	}
}

// TestModeLine: -line prints "name = value" blocks, names right-aligned.
func TestModeLine(t *testing.T) {
	e := newEnv(t)
	r := e.query("SELECT id, name, score FROM users WHERE id < 3 ORDER BY id", "-line")
	wantOK(t, r)
	wantOutput(t, r.stdout, "   id = 1\n name = ada\nscore = 9.5\n\n   id = 2\n name = grace\nscore = \n")
}

// TestDotModeAndHeaders: .mode and .headers switch the output within a
// script; .mode alone shows the mode; bad arguments are errors.
func TestDotModeAndHeaders(t *testing.T) {
	e := newEnv(t)
	script := strings.Join([]string{
		"SELECT id FROM users WHERE id = 1;",
		".mode list",
		"SELECT id, name FROM users WHERE id = 1;",
		".headers off",
		"SELECT id, name FROM users WHERE id = 2;",
		".mode csv",
		"SELECT 'a,b' AS v;",
		".headers on",
		".mode json",
		"SELECT 1 AS one;",
		".mode column",
		".mode",
		"SELECT 2 AS two;",
	}, "\n")
	r := e.query(script)
	wantOK(t, r)
	wantOutput(t, r.stdout, "id\n--\n 1\n"+
		"id|name\n1|ada\n"+
		"2|grace\n"+
		"\"a,b\"\r\n"+
		"[{\"one\":1}]\n"+
		"current output mode: column\n"+
		"two\n---\n  2\n")

	for _, bad := range []string{".mode table", ".mode list csv", ".headers", ".headers maybe"} {
		r := e.query(bad)
		if r.code != 1 || !strings.Contains(r.stderr, "usage: "+strings.Fields(bad)[0]) {
			t.Errorf("%s: exit %d, stderr %q; want a usage error", bad, r.code, r.stderr)
		}
	}
}

// TestModeFlagsLastWins: of several mode flags the last one counts, and
// -header after -noheader turns the names back on.
func TestModeFlagsLastWins(t *testing.T) {
	o, err := parseArgs([]string{"--local", "x.db", "file:///s", "-json", "-noheader", "-list", "-header"})
	if err != nil {
		t.Fatal(err)
	}
	if o.output != (output{mode: modeList}) {
		t.Errorf("output = %+v, want list with headers", o.output)
	}
	o, err = parseArgs([]string{"--local", "x.db", "file:///s"})
	if err != nil || o.output != (output{}) {
		t.Errorf("default output = %+v, %v; want column with headers", o.output, err)
	}
}
