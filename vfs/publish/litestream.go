package publish

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrLitestream is the error of a publish of a database that Litestream
// replicates too: each would checkpoint the log under the other, and
// publishing needs one party to decide when the log restarts.
var ErrLitestream = errors.New("Litestream replicates this database")

// refuseLitestream fails when Litestream has been at the database: its
// meta directory next to it, or its tables inside.
func (p *Publisher) refuseLitestream(ctx context.Context, conn *sql.Conn) error {
	meta := p.dbPath + "-litestream"
	var found []string
	if fi, err := os.Stat(meta); err == nil && fi.IsDir() {
		found = append(found, "its directory "+meta)
	}
	rows, err := conn.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('_litestream_seq', '_litestream_lock')")
	if err != nil {
		return fmt.Errorf("read schema: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return fmt.Errorf("read schema: %w", err)
		}
		found = append(found, "its table "+name)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read schema: %w", err)
	}
	if len(found) == 0 {
		return nil
	}
	return fmt.Errorf("%w (found %s): two replicators on one database checkpoint its log under each other; "+
		"stop Litestream, then remove %s and drop its tables (DROP TABLE _litestream_seq; DROP TABLE _litestream_lock) before publishing with walrust",
		ErrLitestream, strings.Join(found, " and "), meta)
}
