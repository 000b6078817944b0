package models

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
)

// scanPrepared runs query, written with bun's ? placeholders, as a prepared
// statement and scans its one row into dest (sql.ErrNoRows when there is
// none). handled is false for a bun.IDB that is not a bun DB, Tx or Conn;
// the caller then goes through bun. The connections must be pgx's (Open's
// and the tests' are).
//
// It is for the statements every request of a hot path sends (the key
// lookup, the deployment-object insert), whose text does not vary with the
// arguments:
//   - bun inlines arguments into the text, so under the pool's exec mode
//     (see Open) every call is parsed and planned anew; here pgx's
//     cache-statement mode prepares the text once per connection, and each
//     later call is one round trip that PostgreSQL neither parses nor,
//     once it settles on a generic plan, plans again;
//   - on a bun.DB it borrows a pooled connection and talks to pgx directly
//     (sql.Conn.Raw): database/sql's Rows would start a goroutine per
//     statement to watch a cancellable context (every request's is),
//     which pgx already does without one.
//
// bun query hooks do not see these statements.
func scanPrepared(ctx context.Context, db bun.IDB, query string, args []any, dest ...any) (handled bool, err error) {
	query = numbered(query)
	// pgx takes a leading QueryExecMode argument as an option, not a parameter.
	args = append([]any{pgx.QueryExecModeCacheStatement}, args...)
	var h interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}
	switch d := db.(type) {
	case *bun.DB:
		return true, scanPgx(ctx, d.DB, query, args, dest)
	case bun.Tx:
		h = d.Tx
	case *bun.Tx:
		h = d.Tx
	case bun.Conn:
		h = d.Conn
	case *bun.Conn:
		h = d.Conn
	default:
		return false, nil
	}
	return true, h.QueryRowContext(ctx, query, args...).Scan(dest...)
}

// scanPgx runs one query on a connection of db's pool through pgx itself.
func scanPgx(ctx context.Context, db *sql.DB, query string, args, dest []any) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("models: %T is not a pgx connection", dc)
		}
		// pgx.ErrNoRows is sql.ErrNoRows to errors.Is.
		return c.Conn().QueryRow(ctx, query, args...).Scan(dest...)
	})
}

// numbered turns bun's ? placeholders into PostgreSQL's $1, $2, ….
// The statements given to it hold no ? of their own (no literals, no
// jsonb operators).
func numbered(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 8)
	for i := 1; ; i++ {
		j := strings.IndexByte(query, '?')
		if j < 0 {
			b.WriteString(query)
			return b.String()
		}
		b.WriteString(query[:j])
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(i))
		query = query[j+1:]
	}
}
