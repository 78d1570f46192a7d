package main

import (
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// maxBlobBytes is how many bytes of a blob are shown before it is cut.
const maxBlobBytes = 32

// widthRows is how many rows are held to size the columns; later rows are
// written as they come, with the same widths, so memory stays bounded.
const widthRows = 1000

// cell is one formatted value.
type cell struct {
	text    string
	numeric bool
	null    bool
}

// formatValue renders a value as the shell shows it: NULL, integers and
// reals as SQLite prints them, blobs as x'..' hex (cut after maxBlobBytes),
// text with control characters escaped so that columns stay aligned.
func formatValue(v any) cell {
	switch v := v.(type) {
	case nil:
		return cell{text: "NULL", null: true}
	case int64:
		return cell{text: strconv.FormatInt(v, 10), numeric: true}
	case float64:
		return cell{text: formatReal(v), numeric: true}
	case bool: // mattn/go-sqlite3 turns integers in BOOLEAN columns into bools
		if v {
			return cell{text: "1", numeric: true}
		}
		return cell{text: "0", numeric: true}
	case []byte:
		return cell{text: formatBlob(v)}
	case string:
		return cell{text: escapeText(v)}
	case time.Time: // mattn/go-sqlite3 parses DATE/DATETIME/TIMESTAMP columns
		return cell{text: formatTime(v)}
	default:
		return cell{text: escapeText(fmt.Sprint(v))}
	}
}

// formatReal prints a REAL the way SQLite does: always with a decimal point
// or an exponent, so it reads as a real and not an integer.
func formatReal(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NULL"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

func formatBlob(b []byte) string {
	if len(b) <= maxBlobBytes {
		return "x'" + hex.EncodeToString(b) + "'"
	}
	return fmt.Sprintf("x'%s...' (%d bytes)", hex.EncodeToString(b[:maxBlobBytes]), len(b))
}

func formatTime(t time.Time) string {
	if t.Location() == time.UTC {
		return t.Format("2006-01-02 15:04:05.999999999")
	}
	return t.Format("2006-01-02 15:04:05.999999999-07:00")
}

// escapeText makes newlines, tabs and other control characters visible.
func escapeText(s string) string {
	clean := true
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// tableWriter writes a result in aligned columns under a header and a
// dashed rule, like sqlite3's ".mode column". Columns whose values are all
// numbers (or NULL) are right-aligned. The first widthRows rows are held
// back to size the columns.
type tableWriter struct {
	w       io.Writer
	cols    []string
	held    [][]cell
	widths  []int
	right   []bool
	started bool // header written; rows are now written as they come
	// noHeader leaves out the header and its rule (.headers off).
	noHeader bool
	err      error
}

func newTableWriter(w io.Writer, cols []string) *tableWriter {
	return &tableWriter{w: w, cols: cols}
}

// row adds one row of values.
func (t *tableWriter) row(values []any) {
	cells := make([]cell, len(values))
	for i, v := range values {
		cells[i] = formatValue(v)
	}
	if t.started {
		t.writeRow(cells)
		return
	}
	t.held = append(t.held, cells)
	if len(t.held) >= widthRows {
		t.start()
	}
}

// close writes what is held. A result with no rows prints nothing, as in
// sqlite3.
func (t *tableWriter) close() error {
	if !t.started && len(t.held) > 0 {
		t.start()
	}
	return t.err
}

func (t *tableWriter) start() {
	t.started = true
	n := len(t.cols)
	t.widths = make([]int, n)
	t.right = make([]bool, n)
	for i, c := range t.cols {
		if !t.noHeader {
			t.widths[i] = utf8.RuneCountInString(c)
		}
		numbers, others := 0, 0
		for _, r := range t.held {
			t.widths[i] = max(t.widths[i], utf8.RuneCountInString(r[i].text))
			switch {
			case r[i].numeric:
				numbers++
			case !r[i].null:
				others++
			}
		}
		t.right[i] = numbers > 0 && others == 0
	}
	header := make([]cell, n)
	rule := make([]cell, n)
	for i, c := range t.cols {
		header[i] = cell{text: c}
		rule[i] = cell{text: strings.Repeat("-", t.widths[i])}
	}
	if !t.noHeader {
		t.writeRow(header)
		t.writeRow(rule)
	}
	for _, r := range t.held {
		t.writeRow(r)
	}
	t.held = nil
}

func (t *tableWriter) writeRow(cells []cell) {
	if t.err != nil {
		return
	}
	var b strings.Builder
	for i, c := range cells {
		if i > 0 {
			b.WriteString("  ")
		}
		pad := strings.Repeat(" ", max(0, t.widths[i]-utf8.RuneCountInString(c.text)))
		if t.right[i] {
			b.WriteString(pad)
			b.WriteString(c.text)
		} else {
			b.WriteString(c.text)
			b.WriteString(pad)
		}
	}
	line := strings.TrimRight(b.String(), " ") + "\n"
	_, t.err = io.WriteString(t.w, line)
}

// writeList writes names in columns that fit width, filled top to bottom
// (as sqlite3's .tables does).
func writeList(w io.Writer, names []string, width int) error {
	if len(names) == 0 {
		return nil
	}
	colWidth := 0
	for _, n := range names {
		colWidth = max(colWidth, utf8.RuneCountInString(n))
	}
	colWidth += 2
	ncols := max(1, (width+2)/colWidth)
	nrows := (len(names) + ncols - 1) / ncols
	for r := 0; r < nrows; r++ {
		var b strings.Builder
		for c := 0; c < ncols; c++ {
			i := c*nrows + r
			if i >= len(names) {
				break
			}
			b.WriteString(names[i])
			b.WriteString(strings.Repeat(" ", colWidth-utf8.RuneCountInString(names[i])))
		}
		if _, err := io.WriteString(w, strings.TrimRight(b.String(), " ")+"\n"); err != nil {
			return err
		}
	}
	return nil
}
