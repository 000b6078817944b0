package dbtest_test

import (
	"context"
	"testing"

	"github.com/brokkr/brokkr/dbtest"
)

func TestNewGivesEachTestItsOwnMigratedDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	names := make(chan string, 3)
	for _, name := range []string{"a", "b", "c"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := dbtest.New(t)
			names <- db.Name

			var current string
			if err := db.Bun.QueryRowContext(ctx, "SELECT current_database()").Scan(&current); err != nil {
				t.Fatal(err)
			}
			if current != db.Name {
				t.Errorf("connected to %q, want %q", current, db.Name)
			}
			var applied int
			if err := db.Bun.QueryRowContext(ctx, "SELECT count(*) FROM bun_migrations").Scan(&applied); err != nil {
				t.Fatal(err)
			}
			if applied == 0 {
				t.Error("no migrations applied in the test database")
			}
			var one int
			if err := db.Conn(t).QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Errorf("pgx conn: %d, %v", one, err)
			}
		})
	}
	t.Cleanup(func() {
		close(names)
		seen := map[string]bool{}
		for n := range names {
			if seen[n] {
				t.Errorf("database %s handed out twice", n)
			}
			seen[n] = true
		}
	})
}
