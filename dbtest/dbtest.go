// Package dbtest gives each test its own freshly migrated PostgreSQL database.
//
// The server is $TEST_DATABASE_URL when set (an administrator's URL; its
// database is used for maintenance), otherwise the embedded test cluster in
// <repo root>/.brokkr/test, started through localpg on first use and left
// running afterwards (`make test` stops it; so does `go run ./cmd/testpg stop`).
//
// The first New in a process makes sure a template database named after
// migrations.Fingerprint() exists, building it under an advisory lock so that
// parallel test binaries build it once; every New then clones it with
// CREATE DATABASE … TEMPLATE, which costs milliseconds.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/localpg"
	"github.com/brokkr/brokkr/migrations"
	"github.com/brokkr/brokkr/models"
)

// DB is one test's database.
type DB struct {
	Bun  *bun.DB // bun on pgx's database/sql driver
	URL  string  // postgres:// URL of this database
	Name string  // database name

	mu    sync.Mutex
	conns []*pgx.Conn
}

// templateLockKey is the advisory lock (on the maintenance database) held
// while a template is checked or built.
const templateLockKey = 0x62726f6b6b72 // "brokkr"

type server struct {
	adminURL *url.URL
	admin    *sql.DB
	template string
}

var setup = sync.OnceValues(func() (*server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	raw := os.Getenv("TEST_DATABASE_URL")
	if raw == "" {
		dir, err := LocalDir()
		if err != nil {
			return nil, err
		}
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		c, err := localpg.StartWith(ctx, dir, logger, localpg.Options{NoSync: true, Detached: true})
		if err != nil {
			return nil, err
		}
		raw = c.URL("postgres")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("TEST_DATABASE_URL must be a postgres:// URL, got %q", raw)
	}
	admin, err := sql.Open("pgx", raw)
	if err != nil {
		return nil, err
	}
	admin.SetMaxIdleConns(4)
	s := &server{adminURL: u, admin: admin, template: TemplateName()}
	if err := s.ensureTemplate(ctx); err != nil {
		admin.Close()
		return nil, err
	}
	return s, nil
})

// TemplateName is the name of the template database for the current
// migrations.
func TemplateName() string { return "brokkr_tmpl_" + migrations.Fingerprint()[:12] }

// LocalDir is the directory of the embedded test cluster:
// <repo root>/.brokkr/test, the repo root being the nearest directory above
// the working directory that holds go.mod.
func LocalDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".brokkr", "test"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("dbtest: no go.mod above the working directory; set TEST_DATABASE_URL")
		}
		dir = parent
	}
}

// urlFor is the server's URL with the database replaced by name.
func (s *server) urlFor(name string) string {
	u := *s.adminURL
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

// ensureTemplate builds the template database for the current migrations
// unless it exists. The advisory lock serialises test binaries; the template
// gets its final name only once fully migrated, so a crashed build is never
// mistaken for a template.
func (s *server) ensureTemplate(ctx context.Context) error {
	conn, err := s.admin.Conn(ctx) // the advisory lock belongs to this session
	if err != nil {
		return fmt.Errorf("dbtest: connecting to %s: %w", s.adminURL.Redacted(), err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return fmt.Errorf("dbtest: template lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", templateLockKey) //nolint:errcheck

	var exists bool
	err = conn.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)", s.template).Scan(&exists)
	if err != nil || exists {
		return err
	}

	building := s.template + "_build"
	for _, q := range []string{
		"DROP DATABASE IF EXISTS " + ident(building) + " WITH (FORCE)",
		"DROP DATABASE IF EXISTS " + ident(s.template) + " WITH (FORCE)",
		"CREATE DATABASE " + ident(building),
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("dbtest: %s: %w", q, err)
		}
	}
	db := open(s.urlFor(building))
	err = migrations.Up(ctx, db)
	err = errors.Join(err, db.Close())
	if err != nil {
		return fmt.Errorf("dbtest: migrating template %s: %w", building, err)
	}
	for _, q := range []string{
		"ALTER DATABASE " + ident(building) + " RENAME TO " + ident(s.template),
		"ALTER DATABASE " + ident(s.template) + " WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("dbtest: %s: %w", q, err)
		}
	}
	return nil
}

// New creates a database cloned from the migrated template, for t only. It is
// dropped when t ends. New is safe to call from parallel tests.
func New(t testing.TB) *DB {
	t.Helper()
	s, err := setup()
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "brokkr_test_" + hex.EncodeToString(b[:])
	if _, err := s.admin.ExecContext(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(s.template)); err != nil {
		t.Fatalf("dbtest: creating %s: %v", name, err)
	}
	d := &DB{URL: s.urlFor(name), Name: name}
	d.Bun = open(d.URL)
	t.Cleanup(func() {
		d.mu.Lock()
		for _, c := range d.conns {
			_ = c.Close(context.Background())
		}
		d.mu.Unlock()
		_ = d.Bun.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := s.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("dbtest: dropping %s: %v", name, err)
		}
	})
	return d
}

// Conn opens a new pgx connection to the test's database, for raw pgx access
// (LISTEN, COPY, …). It is closed when the test ends.
func (d *DB) Conn(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), d.URL)
	if err != nil {
		t.Fatalf("dbtest: connecting to %s: %v", d.Name, err)
	}
	d.mu.Lock()
	d.conns = append(d.conns, conn)
	d.mu.Unlock()
	return conn
}

// open returns bun on pgx's database/sql driver. sql.Open only fails for an
// unknown driver, and "pgx" is registered by the import above.
// open connects the way the broker does (models.Open), so tests and
// benchmarks see the server's query mode and pool.
func open(dsn string) *bun.DB {
	db, err := models.Open(dsn)
	if err != nil {
		panic(err)
	}
	return db
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }
