package localpg

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestStartConnectStop(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "cluster")
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	// Two concurrent starters: one initialises and starts, the other waits
	// on the lock and then reuses the running server.
	var (
		wg       sync.WaitGroup
		clusters [2]*Cluster
		errs     [2]error
	)
	for i := range clusters {
		wg.Go(func() {
			clusters[i], errs[i] = StartWith(ctx, dir, logger, Options{NoSync: true})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	a, b := clusters[0], clusters[1]
	t.Cleanup(func() { _ = Shutdown(context.Background(), dir, nil) })
	if a.started == b.started {
		t.Fatalf("started = %v and %v, want exactly one starter", a.started, b.started)
	}
	if a.Port() != b.Port() || a.Port() == 5432 {
		t.Fatalf("ports %d and %d, want one private port", a.Port(), b.Port())
	}
	starter, reuser := a, b
	if !starter.started {
		starter, reuser = b, a
	}

	if err := starter.EnsureDatabase(ctx, "brokkr"); err != nil {
		t.Fatal(err)
	}
	if err := reuser.EnsureDatabase(ctx, "brokkr"); err != nil { // exists: no-op
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, starter.URL("brokkr"))
	if err != nil {
		t.Fatal(err)
	}
	var db, enc string
	if err := conn.QueryRow(ctx, "SELECT current_database(), pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()").Scan(&db, &enc); err != nil {
		t.Fatal(err)
	}
	if db != "brokkr" || enc != "UTF8" {
		t.Errorf("connected to %q (%s), want brokkr (UTF8)", db, enc)
	}
	_ = conn.Close(ctx)

	// The reuser's Stop leaves the server running.
	if err := reuser.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, ok := runningPID(starter.pgdata()); !ok {
		t.Fatal("server stopped by a Cluster that did not start it")
	}
	if err := starter.Stop(); err != nil {
		t.Fatal(err)
	}
	if pid, ok := runningPID(starter.pgdata()); ok {
		t.Fatalf("server (pid %d) still running after Stop", pid)
	}

	// A second Start on the same directory restarts the existing cluster on
	// the same port.
	c, err := Start(ctx, dir, logger)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port() != starter.Port() || !c.started {
		t.Errorf("restart: port %d started %v, want port %d started true", c.Port(), c.started, starter.Port())
	}
	if err := c.EnsureDatabase(ctx, "brokkr"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestFindBinariesEnv(t *testing.T) {
	t.Setenv("BROKKR_PG_BIN", t.TempDir())
	if _, err := FindBinaries(""); err == nil {
		t.Fatal("FindBinaries with an empty BROKKR_PG_BIN directory: want an error")
	}
}
