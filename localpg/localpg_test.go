package localpg

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

// A server is stopped by the last process using it, whoever started it; a
// server left running by a process that died (its flock on dir/users gone
// with it) is taken over, with a warning, and stopped on exit; a detached
// Cluster leaves it running.
func TestLastUserStopsAndTakeOver(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "cluster")
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	t.Cleanup(func() { _ = Shutdown(context.Background(), dir, nil) })
	start := func(opts Options) *Cluster {
		t.Helper()
		c, err := StartWith(ctx, dir, logger, opts)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	running := func() bool { _, ok := runningPID(filepath.Join(dir, "pgdata")); return ok }
	stop := func(c *Cluster, wantRunning bool, who string) {
		t.Helper()
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
		if running() != wantRunning {
			t.Fatalf("after %s's Stop: running %v, want %v", who, running(), wantRunning)
		}
	}

	// The starter leaves first: the server stays for the other user, who
	// stops it as the last one.
	a := start(Options{NoSync: true})
	b := start(Options{NoSync: true})
	if !a.Started() || b.Started() {
		t.Fatalf("started: %v %v, want the first only", a.Started(), b.Started())
	}
	stop(a, true, "the starter, with another user")
	stop(b, false, "the last user")

	// A user that dies without stopping (here: its lock released without
	// Stop, as the kernel releases a killed process's) leaves the server
	// running; the next Start takes it over, says so, and stops it.
	c := start(Options{NoSync: true})
	_ = c.users.Close()
	c.users = nil
	if !running() {
		t.Fatal("server stopped with its user's death")
	}
	d := start(Options{NoSync: true})
	mu.Lock()
	said := strings.Contains(logs.String(), "taking it over")
	mu.Unlock()
	if d.Started() || !said {
		t.Fatalf("take-over: started %v, logged %v:\n%s", d.Started(), said, logs.String())
	}
	stop(d, false, "the taker-over")

	// Detached: left running for whoever comes next.
	e := start(Options{NoSync: true, Detached: true})
	stop(e, true, "a detached Cluster")
	if err := Shutdown(ctx, dir, nil); err != nil || running() {
		t.Fatalf("Shutdown: %v, running %v", err, running())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
