package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

const dotHelp = `.exit ?CODE?         Exit, with status CODE (default 0)
.headers on|off      Print column names (column, list and csv modes) or not
.help                Show this message
.mode ?MODE?         Print results as MODE, or show the mode: column (aligned
                     columns), list ('|' between values), csv (RFC 4180),
                     json (an array of objects; blobs as hex strings), line
                     ("column = value" lines)
.quit                Exit
.schema ?PATTERN?    Show the CREATE statements of tables, indexes, views and
                     triggers, or of those whose name (or table) is LIKE PATTERN
.status              Show the replica's status (PRAGMA walrust_status)
.tables ?PATTERN?    List tables and views, or those whose name is LIKE PATTERN

SQL statements end with ';' and may span lines. The replica is read-only.
PRAGMA walrust_txid shows the TXID being read; PRAGMA walrust_status the
replication status as JSON.
`

// dot runs a dot-command line such as ".schema users".
func (sh *shell) dot(line string) error {
	args, err := splitArgs(strings.TrimSuffix(strings.TrimSpace(line), ";"))
	if err != nil {
		return err
	}
	name, args := args[0], args[1:]
	switch name {
	case ".help":
		_, err := sh.out.WriteString(dotHelp)
		return firstErr(err, sh.out.Flush())
	case ".quit":
		return quitRequest{}
	case ".exit":
		if len(args) == 0 {
			return quitRequest{}
		}
		code, err := strconv.Atoi(args[0])
		if err != nil || len(args) > 1 {
			return fmt.Errorf("usage: .exit ?CODE?")
		}
		return quitRequest{code: code}
	case ".tables":
		if len(args) > 1 {
			return fmt.Errorf("usage: .tables ?PATTERN?")
		}
		return sh.tables(args)
	case ".schema":
		if len(args) > 1 {
			return fmt.Errorf("usage: .schema ?PATTERN?")
		}
		return sh.schema(args)
	case ".mode":
		return sh.setMode(args)
	case ".headers", ".header":
		on, ok := map[string]bool{"on": true, "yes": true, "1": true, "off": false, "no": false, "0": false}[strings.ToLower(strings.Join(args, " "))]
		if !ok || len(args) != 1 {
			return fmt.Errorf("usage: .headers on|off")
		}
		sh.output.noHeader = !on
		return nil
	case ".status":
		if len(args) > 0 {
			return fmt.Errorf("usage: .status")
		}
		return sh.status()
	default:
		return fmt.Errorf("unknown command: %s (.help lists the commands)", name)
	}
}

// setMode is .mode: with no argument it shows the mode.
func (sh *shell) setMode(args []string) error {
	switch len(args) {
	case 0:
		_, err := fmt.Fprintf(sh.out, "current output mode: %s\n", sh.output.modeName())
		return firstErr(err, sh.out.Flush())
	case 1:
		if m, ok := parseMode(args[0]); ok {
			sh.output.mode = m
			return nil
		}
	}
	names := make([]string, len(outputModes))
	for i, m := range outputModes {
		names[i] = string(m)
	}
	return fmt.Errorf("usage: .mode ?MODE? (MODE is one of %s)", strings.Join(names, ", "))
}

func (sh *shell) tables(args []string) error {
	q := `SELECT name FROM sqlite_schema
		WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\_%' ESCAPE '\'`
	var params []any
	if len(args) == 1 {
		q += " AND name LIKE ?"
		params = append(params, args[0])
	}
	names, err := sh.queryStrings(q+" ORDER BY name", params...)
	if err != nil {
		return fmt.Errorf(".tables: %w", err)
	}
	if err := writeList(sh.out, names, sh.width()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return sh.out.Flush()
}

func (sh *shell) schema(args []string) error {
	q := `SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL`
	var params []any
	if len(args) == 1 {
		q += " AND (name LIKE ?1 OR tbl_name LIKE ?1)"
		params = append(params, args[0])
	}
	stmts, err := sh.queryStrings(q+" ORDER BY rowid", params...)
	if err != nil {
		return fmt.Errorf(".schema: %w", err)
	}
	if len(stmts) == 0 && len(args) == 1 {
		return fmt.Errorf(".schema: nothing matches %q", args[0])
	}
	for _, s := range stmts {
		if _, err := fmt.Fprintf(sh.out, "%s;\n", s); err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	return sh.out.Flush()
}

// status prints PRAGMA walrust_status as indented JSON.
func (sh *shell) status() error {
	var raw string
	if err := sh.conn.QueryRowContext(context.Background(), "PRAGMA walrust_status").Scan(&raw); err != nil {
		return fmt.Errorf(".status: %w", err)
	}
	var b bytes.Buffer
	if err := json.Indent(&b, []byte(raw), "", "  "); err != nil {
		return fmt.Errorf(".status: PRAGMA walrust_status returned %q: %w", raw, err)
	}
	b.WriteByte('\n')
	if _, err := sh.out.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return sh.out.Flush()
}

func (sh *shell) queryStrings(q string, args ...any) ([]string, error) {
	ctx, done := sh.statementContext()
	defer done()
	rows, err := sh.conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// splitArgs splits a dot-command line at blanks; '...' and "..." quote an
// argument that holds blanks.
func splitArgs(line string) ([]string, error) {
	var args []string
	for line = strings.TrimLeft(line, " \t"); line != ""; line = strings.TrimLeft(line, " \t") {
		if q := line[0]; q == '\'' || q == '"' {
			end := strings.IndexByte(line[1:], q)
			if end < 0 {
				return nil, fmt.Errorf("unterminated %c in %s", q, line)
			}
			args = append(args, line[1:1+end])
			line = line[2+end:]
			continue
		}
		end := strings.IndexAny(line, " \t")
		if end < 0 {
			end = len(line)
		}
		args = append(args, line[:end])
		line = line[end:]
	}
	if len(args) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	return args, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
