package main

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestFormatValue(t *testing.T) {
	long := bytes.Repeat([]byte{0xab}, 40)
	for _, tc := range []struct {
		v    any
		want string
	}{
		{nil, "NULL"},
		{int64(-42), "-42"},
		{1.5, "1.5"},
		{3.0, "3.0"},
		{1e20, "1e+20"},
		{math.Inf(1), "Inf"},
		{true, "1"},
		{false, "0"},
		{[]byte{}, "x''"},
		{[]byte{0, 1, 0xfe}, "x'0001fe'"},
		{long, "x'" + strings.Repeat("ab", 32) + "...' (40 bytes)"},
		{"plain", "plain"},
		{"two\nlines\tand\x01", `two\nlines\tand\x01`},
		{"ünïcode", "ünïcode"},
		{time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), "2024-05-06 07:08:09"},
		{time.Date(2024, 5, 6, 7, 8, 9, 500_000_000, time.FixedZone("", 3600)), "2024-05-06 07:08:09.5+01:00"},
	} {
		if got := formatValue(tc.v).text; got != tc.want {
			t.Errorf("formatValue(%#v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestTableWriter(t *testing.T) {
	var b strings.Builder
	tw := newTableWriter(&b, []string{"id", "name", "n", "mixed"})
	tw.row([]any{int64(1), "ada", 2.5, int64(1)})
	tw.row([]any{int64(100), "grace hopper", nil, "x"})
	tw.row([]any{int64(7), nil, int64(-3), nil})
	if err := tw.close(); err != nil {
		t.Fatal(err)
	}
	want := "" +
		" id  name             n  mixed\n" +
		"---  ------------  ----  -----\n" +
		"  1  ada            2.5  1\n" +
		"100  grace hopper  NULL  x\n" +
		"  7  NULL            -3  NULL\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	tw = newTableWriter(&b, []string{"x"})
	if err := tw.close(); err != nil || b.Len() != 0 {
		t.Errorf("no rows: wrote %q, %v; want nothing", b.String(), err)
	}
}

func TestTableWriterStreamsAfterWidthRows(t *testing.T) {
	var b strings.Builder
	tw := newTableWriter(&b, []string{"v"})
	for i := range widthRows {
		tw.row([]any{"ab"})
		if i < widthRows-1 && b.Len() != 0 {
			t.Fatalf("wrote before %d rows were held", widthRows)
		}
	}
	if !strings.HasPrefix(b.String(), "v\n--\nab\n") {
		t.Fatalf("header after %d rows: %q", widthRows, b.String()[:min(20, b.Len())])
	}
	n := b.Len()
	tw.row([]any{"longer value"})
	if got := b.String()[n:]; got != "longer value\n" {
		t.Errorf("row after the held ones: %q", got)
	}
	if err := tw.close(); err != nil {
		t.Fatal(err)
	}
}

func TestWriteList(t *testing.T) {
	var names []string
	for i := range 7 {
		names = append(names, fmt.Sprintf("table_%d", i))
	}
	var b strings.Builder
	if err := writeList(&b, names, 30); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"table_0  table_3  table_6\n" +
		"table_1  table_4\n" +
		"table_2  table_5\n"
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := writeList(&b, []string{"a_very_long_table_name"}, 10); err != nil || b.String() != "a_very_long_table_name\n" {
		t.Errorf("narrow: %q, %v", b.String(), err)
	}
}
