package main

import (
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// An output mode is how the shell prints a statement's rows, as sqlite3's
// .mode does.
type outputMode string

const (
	modeColumn outputMode = "column" // aligned columns (the default)
	modeList   outputMode = "list"   // values separated by '|'
	modeCSV    outputMode = "csv"    // RFC 4180
	modeJSON   outputMode = "json"   // an array of objects per statement
	modeLine   outputMode = "line"   // "column = value", a blank line between rows
)

// outputModes are the modes, in the order the help lists them.
var outputModes = []outputMode{modeColumn, modeList, modeCSV, modeJSON, modeLine}

func parseMode(s string) (outputMode, bool) {
	m := outputMode(strings.ToLower(s))
	return m, slices.Contains(outputModes, m)
}

// output is how results are printed: the mode, and whether a header row
// names the columns (column, list and csv modes; json and line name every
// value anyway). The zero value is column mode with headers.
type output struct {
	mode     outputMode // "": column
	noHeader bool
}

// modeName is the mode as .mode shows it.
func (o output) modeName() outputMode {
	if o.mode == "" {
		return modeColumn
	}
	return o.mode
}

// resultWriter prints one statement's rows.
type resultWriter interface {
	row(values []any)
	close() error // writes what is held; the first write error
}

func (o output) writer(w io.Writer, cols []string) resultWriter {
	switch o.mode {
	case modeList:
		return newListWriter(w, cols, !o.noHeader)
	case modeCSV:
		return newCSVWriter(w, cols, !o.noHeader)
	case modeJSON:
		return &jsonWriter{w: w, cols: cols}
	case modeLine:
		return &lineWriter{w: w, cols: cols}
	default:
		tw := newTableWriter(w, cols)
		tw.noHeader = o.noHeader
		return tw
	}
}

// plainValue is a value as list, csv and line modes print it (as sqlite3
// does): NULL as the empty string, text as it is, numbers as in column
// mode, blobs whole as x'..' hex.
func plainValue(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []byte:
		return "x'" + hex.EncodeToString(v) + "'"
	case time.Time:
		return formatTime(v)
	default:
		return formatValue(v).text
	}
}

// recordWriter prints each row as one record of plain values, after a
// record of the column names when headers are on: list mode (values
// separated by '|', one row a line) and csv mode (RFC 4180 records:
// fields quoted when they hold a comma, a quote or a line break, rows
// ended by CRLF).
type recordWriter struct {
	cols    []string
	headers bool
	write   func(fields []string) error
	flush   func() error // nil: nothing held
	started bool
	err     error
}

func newListWriter(w io.Writer, cols []string, headers bool) *recordWriter {
	return &recordWriter{cols: cols, headers: headers, write: func(fields []string) error {
		_, err := io.WriteString(w, strings.Join(fields, "|")+"\n")
		return err
	}}
}

func newCSVWriter(w io.Writer, cols []string, headers bool) *recordWriter {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true // as RFC 4180 and sqlite3
	return &recordWriter{cols: cols, headers: headers, write: cw.Write, flush: func() error {
		cw.Flush()
		return cw.Error()
	}}
}

func (r *recordWriter) row(values []any) {
	if !r.started {
		r.started = true
		if r.headers {
			r.record(r.cols)
		}
	}
	fields := make([]string, len(values))
	for i, v := range values {
		fields[i] = plainValue(v)
	}
	r.record(fields)
}

func (r *recordWriter) record(fields []string) {
	if r.err == nil {
		r.err = r.write(fields)
	}
}

func (r *recordWriter) close() error {
	if r.flush != nil {
		return firstErr(r.err, r.flush())
	}
	return r.err
}

// jsonWriter prints a statement's rows as one JSON array of objects, keys
// in column order: integers and reals as numbers (a NaN or an infinity as
// null), NULL as null, text as strings, blobs as strings of lowercase hex.
// A statement with no rows prints nothing, as in sqlite3.
type jsonWriter struct {
	w       io.Writer
	cols    []string
	keys    []string // the column names, JSON-encoded
	started bool
	err     error
}

func (j *jsonWriter) row(values []any) {
	var b bytes.Buffer
	if !j.started {
		j.started = true
		j.keys = make([]string, len(j.cols))
		for i, c := range j.cols {
			j.keys[i] = jsonString(c)
		}
		b.WriteString("[{")
	} else {
		b.WriteString(",\n{")
	}
	for i, v := range values {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(j.keys[i])
		b.WriteByte(':')
		b.WriteString(jsonValue(v))
	}
	b.WriteByte('}')
	j.write(b.Bytes())
}

func (j *jsonWriter) write(b []byte) {
	if j.err == nil {
		_, j.err = j.w.Write(b)
	}
}

func (j *jsonWriter) close() error {
	if j.started {
		j.write([]byte("]\n"))
	}
	return j.err
}

func jsonValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "null"
		}
		return formatReal(v)
	case bool:
		return formatValue(v).text
	case []byte:
		return `"` + hex.EncodeToString(v) + `"`
	default:
		return jsonString(plainValue(v))
	}
}

// jsonString is s as a JSON string, with <, > and & as they are.
func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil { // a string always encodes
		panic(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// lineWriter prints each row as "name = value" lines, the names
// right-aligned, with a blank line between rows (sqlite3's .mode line).
type lineWriter struct {
	w       io.Writer
	cols    []string
	width   int
	started bool
	err     error
}

func (l *lineWriter) row(values []any) {
	var b strings.Builder
	if !l.started {
		l.started = true
		for _, c := range l.cols {
			l.width = max(l.width, utf8.RuneCountInString(c))
		}
	} else {
		b.WriteByte('\n')
	}
	for i, v := range values {
		fmt.Fprintf(&b, "%*s = %s\n", l.width, l.cols[i], plainValue(v))
	}
	if l.err == nil {
		_, l.err = io.WriteString(l.w, b.String())
	}
}

func (l *lineWriter) close() error { return l.err }
