package models

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
)

// effect says whether a statement changes anything, which decides when
// scanPrepared may send it again.
type effect bool

const (
	reads  effect = false // a SELECT: sending it twice changes nothing
	writes effect = true
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
//     which pgx already does without one. Going around database/sql also
//     goes around its retry of a statement the driver proves it never sent
//     (driver.ErrBadConn), so scanPgx does that itself (see there).
//
// bun query hooks do not see these statements.
func scanPrepared(ctx context.Context, db bun.IDB, eff effect, query string, args []any, dest ...any) (handled bool, err error) {
	query = numbered(query)
	// pgx takes a leading QueryExecMode argument as an option, not a parameter.
	args = append([]any{pgx.QueryExecModeCacheStatement}, args...)
	var h interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}
	switch d := db.(type) {
	case *bun.DB:
		return true, scanPgx(ctx, d.DB, eff, query, args, dest)
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

// scanPgx runs one query on a connection of db's pool through pgx itself,
// and once more on another connection when the first attempt provably had
// no effect:
//   - pgx says nothing was sent (pgconn.SafeToRetry: the connection was
//     found closed or busy before writing). This is what database/sql
//     retries for statements that go through it: pgx's stdlib driver turns
//     exactly these errors, and a connection already closed, into
//     driver.ErrBadConn, which database/sql answers by retrying on another
//     connection (and its ResetSession drops closed connections, pinging
//     those idle for over a second, before handing them out);
//   - or the statement only reads and its connection died under it (a
//     terminated backend, a network failure): reading again changes nothing.
//
// A write whose connection died after it was sent is not sent again: it
// may have been committed. Its error is for Translate (UNAVAILABLE).
func scanPgx(ctx context.Context, db *sql.DB, eff effect, query string, args, dest []any) error {
	return withPgx(ctx, db, eff, func(c *pgx.Conn) error { return c.QueryRow(ctx, query, args...).Scan(dest...) })
}

// withPgx runs fn on a pooled connection's pgx.Conn, and once more on
// another connection under scanPgx's rule (nothing was sent, or a read's
// connection died under it). fn must be safe to run twice.
func withPgx(ctx context.Context, db *sql.DB, eff effect, fn func(*pgx.Conn) error) error {
	died, err := withPgxOnce(ctx, db, fn)
	if err != nil && ctx.Err() == nil && (pgconn.SafeToRetry(err) || (eff == reads && died)) {
		_, err = withPgxOnce(ctx, db, fn)
	}
	return err
}

// withPgxOnce runs fn once; died reports that the connection was closed by
// the failure (database/sql then drops it at once).
func withPgxOnce(ctx context.Context, db *sql.DB, fn func(*pgx.Conn) error) (died bool, err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("models: %T is not a pgx connection", dc)
		}
		// pgx.ErrNoRows is sql.ErrNoRows to errors.Is.
		err := fn(c.Conn())
		if err != nil && c.Conn().IsClosed() {
			died = true
			// Raw hands the error to database/sql, which drops a
			// connection whose error is driver.ErrBadConn.
			return &deadConnError{err}
		}
		return err
	})
	var dead *deadConnError
	if errors.As(err, &dead) {
		err = dead.err
	}
	return died, err
}

// deadConnError carries a statement's error out of sql.Conn.Raw while
// telling database/sql that the connection is dead.
type deadConnError struct{ err error }

func (e *deadConnError) Error() string { return e.err.Error() }

func (e *deadConnError) Is(target error) bool { return target == driver.ErrBadConn }

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
