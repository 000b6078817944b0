package migrations_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/localpg"
)

// emptySHA256 is the lowercase hex SHA-256 of the empty string: the checksum
// of every deletion marker.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// fx is one test's database with a raw pgx connection on it.
type fx struct {
	t   *testing.T
	ctx context.Context
	db  *dbtest.DB
	c   *pgx.Conn
}

// setup gives a parallel test its own migrated database.
func setup(t *testing.T) *fx {
	t.Helper()
	t.Parallel()
	db := dbtest.New(t)
	return &fx{t: t, ctx: t.Context(), db: db, c: db.Conn(t)}
}

// with is f for a subtest: failures go to t. The connection is shared, so
// the subtest must not run in parallel with its parent's other users of it.
func (f *fx) with(t *testing.T) *fx {
	g := *f
	g.t = t
	return &g
}

// conn opens another connection to the test's database.
func (f *fx) conn() *pgx.Conn {
	f.t.Helper()
	return f.db.Conn(f.t)
}

func (f *fx) exec(q string, args ...any) {
	f.t.Helper()
	if _, err := f.c.Exec(f.ctx, q, args...); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
}

func (f *fx) execErr(q string, args ...any) error {
	_, err := f.c.Exec(f.ctx, q, args...)
	return err
}

// str runs a query returning one text value.
func (f *fx) str(q string, args ...any) string {
	f.t.Helper()
	var s string
	if err := f.c.QueryRow(f.ctx, q, args...).Scan(&s); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
	return s
}

// int runs a query returning one integer.
func (f *fx) int(q string, args ...any) int64 {
	f.t.Helper()
	var n int64
	if err := f.c.QueryRow(f.ctx, q, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
	return n
}

func (f *fx) bool(q string, args ...any) bool {
	f.t.Helper()
	var b bool
	if err := f.c.QueryRow(f.ctx, q, args...).Scan(&b); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
	return b
}

func (f *fx) time(q string, args ...any) time.Time {
	f.t.Helper()
	var ts time.Time
	if err := f.c.QueryRow(f.ctx, q, args...).Scan(&ts); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
	return ts
}

// Fixtures. Every statement runs in its own transaction (autocommit), so
// each has its own now().

func (f *fx) generator(name string) string {
	f.t.Helper()
	return f.str(`INSERT INTO generators (name) VALUES ($1) RETURNING id::text`, name)
}

func (f *fx) stack(gen, name string) string {
	f.t.Helper()
	return f.str(`INSERT INTO stacks (generator_id, name) VALUES ($1, $2) RETURNING id::text`, gen, name)
}

// object inserts a deployment object with the right checksum and returns its
// id and sequence_id.
func (f *fx) object(stack, yaml string) (string, int64) {
	f.t.Helper()
	var id string
	var seq int64
	err := f.c.QueryRow(f.ctx, `INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
		VALUES ($1, $2, encode(sha256(convert_to($2, 'UTF8')), 'hex')) RETURNING id::text, sequence_id`,
		stack, yaml).Scan(&id, &seq)
	if err != nil {
		f.t.Fatalf("insert object: %v", err)
	}
	return id, seq
}

func (f *fx) agent(name, cluster string) string {
	f.t.Helper()
	return f.str(`INSERT INTO agents (name, cluster_name) VALUES ($1, $2) RETURNING id::text`, name, cluster)
}

func (f *fx) event(agent, object string) string {
	f.t.Helper()
	return f.str(`INSERT INTO agent_events (agent_id, deployment_object_id, event_type, status)
		VALUES ($1, $2, 'DEPLOY', 'SUCCESS') RETURNING id::text`, agent, object)
}

func (f *fx) target(agent, stack string) string {
	f.t.Helper()
	return f.str(`INSERT INTO agent_targets (agent_id, stack_id) VALUES ($1, $2) RETURNING id::text`, agent, stack)
}

// softDelete sets deleted_at = now() on one row and returns that time.
func (f *fx) softDelete(table, id string) time.Time {
	f.t.Helper()
	return f.time(`UPDATE `+table+` SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING deleted_at`, id)
}

func (f *fx) restore(table, id string) {
	f.t.Helper()
	tag, err := f.c.Exec(f.ctx, `UPDATE `+table+` SET deleted_at = NULL WHERE id = $1`, id)
	if err != nil {
		f.t.Fatalf("restore %s %s: %v", table, id, err)
	}
	if tag.RowsAffected() != 1 {
		f.t.Fatalf("restore %s %s: %d rows", table, id, tag.RowsAffected())
	}
}

// deletedAt is the row's deleted_at (nil when live).
func (f *fx) deletedAt(table, id string) *time.Time {
	f.t.Helper()
	var ts *time.Time
	if err := f.c.QueryRow(f.ctx, `SELECT deleted_at FROM `+table+` WHERE id = $1`, id).Scan(&ts); err != nil {
		f.t.Fatalf("deleted_at of %s %s: %v", table, id, err)
	}
	return ts
}

// dataTables are the tables of the data model, parents first.
var dataTables = []string{
	"generators", "stacks", "deployment_objects", "agents", "agent_events", "agent_targets",
	"stack_labels", "stack_annotations", "agent_labels", "agent_annotations", "admin_keys",
}

// snapshot is every row of the data tables as JSON, in a stable order: equal
// snapshots mean nothing was written.
func (f *fx) snapshot() map[string]string {
	f.t.Helper()
	out := map[string]string{}
	for _, tb := range dataTables {
		out[tb] = f.rows(tb, "true")
	}
	return out
}

// rows is the JSON of the rows of table matching where, ordered by id.
func (f *fx) rows(table, where string, args ...any) string {
	f.t.Helper()
	return f.str(`SELECT coalesce(json_agg(t ORDER BY t.id), '[]')::text FROM `+table+` t WHERE `+where, args...)
}

func (f *fx) sameSnapshot(before map[string]string, what string) {
	f.t.Helper()
	after := f.snapshot()
	for _, tb := range dataTables {
		if before[tb] != after[tb] {
			f.t.Errorf("%s changed %s:\nbefore %s\nafter  %s", what, tb, before[tb], after[tb])
		}
	}
}

// wantPgErr fails unless err is a PostgreSQL error with the SQLSTATE code and,
// when constraint is not empty, naming that constraint.
func wantPgErr(t *testing.T, err error, code, constraint string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Errorf("want SQLSTATE %s (%s), got %v", code, constraint, err)
		return
	}
	if pe.Code != code {
		t.Errorf("want SQLSTATE %s (%s), got %s: %s", code, constraint, pe.Code, pe.Message)
	}
	if constraint != "" && pe.ConstraintName != constraint {
		t.Errorf("want constraint %q, got %q (%s)", constraint, pe.ConstraintName, pe.Message)
	}
}

// Databases without migrations -----------------------------------------------

// emptyDB creates a database with no schema at all on the test server (from
// template1, as a first deployment would meet it) and returns bun on it and
// its URL. It is dropped when the test ends.
func emptyDB(t *testing.T) (*bun.DB, string) {
	t.Helper()
	host := dbtest.New(t) // a connection to the server, and its URL
	admin := host.Conn(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "brokkr_mig_" + hex.EncodeToString(b[:])
	if _, err := admin.Exec(t.Context(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	u, err := url.Parse(host.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	u.RawPath = ""
	sqldb, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	db := bun.NewDB(sqldb, pgdialect.New())
	t.Cleanup(func() {
		_ = db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return db, u.String()
}

// pgDumpBin finds pg_dump for the server's major version the way localpg
// finds the server binaries: /usr/lib/postgresql/<major>/bin, then the
// binaries localpg would use, then $PATH.
func pgDumpBin(t *testing.T, dbURL string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var num int
	err = conn.QueryRow(t.Context(), "SELECT current_setting('server_version_num')::int").Scan(&num)
	_ = conn.Close(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	candidates := []string{filepath.Join("/usr/lib/postgresql", fmt.Sprint(num/10000), "bin", "pg_dump")}
	if dir, err := localpg.FindBinaries(""); err == nil {
		candidates = append(candidates, filepath.Join(dir, "pg_dump"))
	}
	if p, err := exec.LookPath("pg_dump"); err == nil {
		candidates = append(candidates, p)
	}
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			return c
		}
	}
	t.Fatalf("pg_dump not found (tried %v)", candidates)
	return ""
}

// restrictLine matches the \restrict / \unrestrict lines recent pg_dump
// releases write with a random key per run.
var restrictLine = regexp.MustCompile(`(?m)^\\(un)?restrict .*$`)

// schemaDump is `pg_dump --schema-only` of the database at dbURL.
func schemaDump(t *testing.T, dbURL string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), pgDumpBin(t, dbURL), "--schema-only", "--no-owner", "--no-privileges", "--dbname="+dbURL)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, stderr.String())
	}
	return restrictLine.ReplaceAllString(string(out), "")
}

// diff is a short description of the first difference between two dumps.
func diff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, x, y)
		}
	}
	return "no difference"
}
