package main

import (
	"reflect"
	"strings"
	"testing"
)

// splitAll feeds text line by line and returns the statements, the last
// one from flush.
func splitAll(text string) []stmt {
	var s splitter
	var out []stmt
	for i, line := range strings.Split(text, "\n") {
		out = append(out, s.feed(line, i+1)...)
	}
	if st, ok := s.flush(); ok {
		out = append(out, st)
	}
	return out
}

func TestSplitter(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []stmt
	}{
		{"one", "SELECT 1;", []stmt{{"SELECT 1;", 1}}},
		{"several on a line", "SELECT 1; SELECT 2;SELECT 3;", []stmt{{"SELECT 1;", 1}, {"SELECT 2;", 1}, {"SELECT 3;", 1}}},
		{"across lines", "SELECT\n  1\n;\nSELECT 2;", []stmt{{"SELECT\n  1\n;", 1}, {"SELECT 2;", 4}}},
		{"unterminated last", "SELECT 1;\nSELECT 2", []stmt{{"SELECT 1;", 1}, {"SELECT 2", 2}}},
		{"empty statements", ";;\n ; \nSELECT 1;;", []stmt{{"SELECT 1;", 3}}},
		{"single quotes", "SELECT 'a;b', 'it''s;';", []stmt{{"SELECT 'a;b', 'it''s;';", 1}}},
		{"quoted identifiers", "SELECT \"a;\"\"b\", `c;d`, [e;f];", []stmt{{"SELECT \"a;\"\"b\", `c;d`, [e;f];", 1}}},
		{"string across lines", "SELECT 'a\n;b';", []stmt{{"SELECT 'a\n;b';", 1}}},
		{"line comment", "SELECT 1 -- not; the end\n;", []stmt{{"SELECT 1 -- not; the end\n;", 1}}},
		{"block comment", "SELECT /* ; \n ; */ 1;", []stmt{{"SELECT /* ; \n ; */ 1;", 1}}},
		{"only comments", "-- hello;\n/* x; */\n", nil},
		{"comment then statement", "-- hello\nSELECT 1;", []stmt{{"SELECT 1;", 2}}},
		{"comment inside statement", "SELECT -- hello\n1;", []stmt{{"SELECT -- hello\n1;", 1}}},
		{"comment after statement", "SELECT 1; -- done;\nSELECT 2;", []stmt{{"SELECT 1;", 1}, {"SELECT 2;", 2}}},
		{"minus and slash", "SELECT 4-1, 6/2;", []stmt{{"SELECT 4-1, 6/2;", 1}}},
		{"trigger", "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE u SET n = n + 1;\n  DELETE FROM v;\nEND;\nSELECT 1;",
			[]stmt{{"CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  UPDATE u SET n = n + 1;\n  DELETE FROM v;\nEND;", 1}, {"SELECT 1;", 5}}},
		{"temp trigger", "create temp trigger tr after insert on t begin select 1; end; select 2;",
			[]stmt{{"create temp trigger tr after insert on t begin select 1; end;", 1}, {"select 2;", 1}}},
		{"not a trigger", "CREATE TABLE trigger_log (x); SELECT 1;", []stmt{{"CREATE TABLE trigger_log (x);", 1}, {"SELECT 1;", 1}}},
		{"begin end transaction", "BEGIN; SELECT 1; END;", []stmt{{"BEGIN;", 1}, {"SELECT 1;", 1}, {"END;", 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := splitAll(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("split %q\n got %+v\nwant %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestSplitterPending(t *testing.T) {
	var s splitter
	for _, step := range []struct {
		line    string
		n       int
		pending bool
	}{
		{"", 0, false},
		{"-- just a comment", 0, false},
		{"SELECT 'a", 0, true},
		{"b';", 1, false},
		{"/* open", 0, true},
		{"close */", 0, false},
		{"SELECT 1; SELECT", 1, true},
		{"2;", 1, false},
	} {
		got := s.feed(step.line, 1)
		if len(got) != step.n || s.pending() != step.pending {
			t.Fatalf("after %q: %d statements, pending %v; want %d, %v", step.line, len(got), s.pending(), step.n, step.pending)
		}
	}
}
