package models_test

import (
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/brokkr/brokkr/models"
)

// Transient database faults translate to UNAVAILABLE with a retryAfter
// (issue 8, item 8); everything else keeps its kind.
func TestTranslateTransientFaults(t *testing.T) {
	t.Parallel()
	pg := func(code, msg string) error {
		return fmt.Errorf("wrapped: %w", &pgconn.PgError{Severity: "ERROR", Code: code, Message: msg})
	}
	for _, c := range []struct {
		name string
		err  error
		want models.Kind
	}{
		{"terminated backend", pg("57P01", "terminating connection due to administrator command"), models.KindUnavailable},
		{"crash shutdown", pg("57P02", "terminating connection because of crash of another server process"), models.KindUnavailable},
		{"starting up", pg("57P03", "the database system is starting up"), models.KindUnavailable},
		{"connection failure", pg("08006", "connection failure"), models.KindUnavailable},
		{"too many connections", pg("53300", "sorry, too many clients already"), models.KindUnavailable},
		{"serialization failure", pg("40001", "could not serialize access"), models.KindUnavailable},
		{"deadlock", pg("40P01", "deadlock detected"), models.KindUnavailable},
		{"statement timeout", pg("57014", "canceling statement due to statement timeout"), models.KindUnavailable},
		{"lock timeout", pg("55P03", "canceling statement due to lock timeout"), models.KindUnavailable},
		{"EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), models.KindUnavailable},
		{"bad connection", driver.ErrBadConn, models.KindUnavailable},
		{"closed connection", pgconn.ErrConnClosed, models.KindUnavailable},
		{"server deadline", context.DeadlineExceeded, models.KindUnavailable},
		{"client gone", context.Canceled, models.KindInternal},
		{"unique violation", pg("23505", "duplicate key"), models.KindConflict},
		{"syntax error", pg("42601", "syntax error"), models.KindInternal},
		{"anything else", fmt.Errorf("boom"), models.KindInternal},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := models.Translate(c.err, "thing")
			if k := models.ErrorKind(err); k != c.want {
				t.Fatalf("kind %s, want %s (%v)", k, c.want, err)
			}
			if c.want == models.KindUnavailable {
				de := err.(*models.Error)
				if de.RetryAfter < 1 || de.Message == "" {
					t.Fatalf("UNAVAILABLE without retryAfter or message: %+v", de)
				}
			}
		})
	}
}
