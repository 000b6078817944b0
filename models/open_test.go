package models_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/models"
)

// Every connection of the pool carries statement_timeout from its start
// (issue 8, item 2): the default, a configured value, or none.
func TestOpenSetsStatementTimeoutOnEveryConnection(t *testing.T) {
	t.Parallel()
	d := dbtest.New(t)
	for _, c := range []struct {
		opts models.Options
		want string
	}{
		{models.Options{}, "10s"},
		{models.Options{StatementTimeout: 1500 * time.Millisecond}, "1500ms"},
		{models.Options{StatementTimeout: -1}, "0"},
	} {
		db, err := models.OpenWith(d.URL, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		// Hold several at once, so each is a connection of its own.
		conns := make([]*sql.Conn, 4)
		for i := range conns {
			if conns[i], err = db.DB.Conn(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		for i, conn := range conns {
			var v string
			if err := conn.QueryRowContext(t.Context(), "SHOW statement_timeout").Scan(&v); err != nil {
				t.Fatal(err)
			}
			if v != c.want {
				t.Errorf("%+v: connection %d has statement_timeout %q, want %q", c.opts, i, v, c.want)
			}
			_ = conn.Close()
		}
		_ = db.Close()
	}
	if models.DefaultStatementTimeout != 10*time.Second {
		t.Fatalf("DefaultStatementTimeout is %v; update the README and this test together", models.DefaultStatementTimeout)
	}
}
