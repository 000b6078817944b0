package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"

	"github.com/brokkr/brokkr/migrations"
	"github.com/brokkr/brokkr/models"
)

// appliedRows is bun's bookkeeping: one "id name group migrated_at" line per
// applied step.
func appliedRows(t *testing.T, db *bun.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SELECT id, name, group_id, migrated_at FROM bun_migrations ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, group int64
		var name, at string
		if err := rows.Scan(&id, &name, &group, &at); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%d %s %d %s", id, name, group, at))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func statusLines(t *testing.T, db *bun.DB) []string {
	t.Helper()
	var b strings.Builder
	if err := migrations.Status(t.Context(), db, &b); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
}

// stepNames are the registered steps, oldest first ("0001_tables", …).
func stepNames() []string {
	var out []string
	for _, m := range migrations.Migrations.Sorted() {
		out = append(out, m.Name+"_"+m.Comment)
	}
	return out
}

func TestUpDownUpYieldsTheSameSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, dbURL := emptyDB(t)

	// Zero: only bun's bookkeeping tables, as Init creates them.
	m := migrations.NewMigrator(db)
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	zero := schemaDump(t, dbURL)

	if err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	first := schemaDump(t, dbURL)
	for _, want := range []string{"CREATE TABLE public.deployment_objects", "CREATE TRIGGER stacks_cascade", "CREATE FUNCTION public.brokkr_stack_cascade"} {
		if !strings.Contains(first, want) {
			t.Fatalf("schema after up lacks %q", want)
		}
	}

	if err := migrations.Down(ctx, db); err != nil {
		t.Fatal(err)
	}
	if got := schemaDump(t, dbURL); got != zero {
		t.Fatalf("down to zero left schema behind: %s", diff(zero, got))
	}
	if n := len(appliedRows(t, db)); n != 0 {
		t.Fatalf("%d steps still marked applied after down to zero", n)
	}

	if err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	if got := schemaDump(t, dbURL); got != first {
		t.Fatalf("up after down differs from the first up: %s", diff(first, got))
	}
}

// Each step's down is the exact inverse of its up: applying steps 1..k, then
// k+1, then k+1's down leaves the schema of 1..k.
func TestEachDownInvertsItsUp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, dbURL := emptyDB(t)
	m := migrations.NewMigrator(db)
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	steps := migrations.Migrations.Sorted()
	if len(steps) < 2 {
		t.Fatalf("only %d steps registered", len(steps))
	}
	for i := range steps {
		step := &steps[i]
		before := schemaDump(t, dbURL)
		if err := step.Up(ctx, m, step); err != nil {
			t.Fatalf("%s up: %v", step.Name, err)
		}
		after := schemaDump(t, dbURL)
		if after == before {
			t.Fatalf("%s up changed nothing", step.Name)
		}
		if err := step.Down(ctx, m, step); err != nil {
			t.Fatalf("%s down: %v", step.Name, err)
		}
		if got := schemaDump(t, dbURL); got != before {
			t.Fatalf("%s down is not the inverse of its up: %s", step.Name, diff(before, got))
		}
		if err := step.Up(ctx, m, step); err != nil {
			t.Fatalf("%s up again: %v", step.Name, err)
		}
		if got := schemaDump(t, dbURL); got != after {
			t.Fatalf("%s up again differs: %s", step.Name, diff(after, got))
		}
	}
}

func TestSecondUpIsANoOp(t *testing.T) {
	f := setup(t)
	db := f.db.Bun
	beforeRows := appliedRows(t, db)
	if len(beforeRows) != len(migrations.Migrations.Sorted()) {
		t.Fatalf("fresh database has %d applied steps, %d registered", len(beforeRows), len(migrations.Migrations.Sorted()))
	}
	before := schemaDump(t, f.db.URL)
	f.generator("keeps its data")

	for range 2 {
		if err := migrations.Up(f.ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	if got := appliedRows(t, db); strings.Join(got, "\n") != strings.Join(beforeRows, "\n") {
		t.Fatalf("up on an up-to-date database changed bun_migrations:\nbefore %v\nafter  %v", beforeRows, got)
	}
	if got := schemaDump(t, f.db.URL); got != before {
		t.Fatalf("up on an up-to-date database changed the schema: %s", diff(before, got))
	}
	if n := f.int("SELECT count(*) FROM generators"); n != 1 {
		t.Fatalf("%d generators after a no-op up, want 1", n)
	}
}

func TestStatusReportsAppliedAndPending(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, _ := emptyDB(t)
	names := stepNames()

	check := func(when string, want func(i int) string) {
		t.Helper()
		lines := statusLines(t, db)
		if len(lines) != len(names) {
			t.Fatalf("%s: status has %d lines, want %d: %q", when, len(lines), len(names), lines)
		}
		for i, line := range lines {
			if w := names[i] + "\t" + want(i); line != w {
				t.Errorf("%s: status line %d = %q, want %q", when, i, line, w)
			}
		}
	}

	check("empty database", func(int) string { return "pending" })
	if err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	check("after up", func(int) string { return "applied (group 1)" })
	if err := migrations.DownOne(ctx, db); err != nil {
		t.Fatal(err)
	}
	check("after down", func(int) string { return "pending" })
	if err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	check("after up again", func(int) string { return "applied (group 1)" }) // bun numbers groups after the last applied one
	if err := migrations.DownOne(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := migrations.DownOne(ctx, db); err != nil { // nothing applied: no error
		t.Fatal(err)
	}
	check("after down twice", func(int) string { return "pending" })
}

// A step that fails is rolled back and not marked applied; the steps before
// it stay applied, and a later up finishes the job.
func TestFailingStepIsNotMarkedApplied(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, dbURL := emptyDB(t)
	names := stepNames()

	// Something already named like the first object 0002 creates makes that
	// step fail after 0001 succeeded.
	if _, err := db.ExecContext(ctx, `CREATE FUNCTION brokkr_touch_updated_at() RETURNS int LANGUAGE sql RETURN 1`); err != nil {
		t.Fatal(err)
	}
	err := migrations.Up(ctx, db)
	if err == nil || !strings.Contains(err.Error(), "brokkr_touch_updated_at") {
		t.Fatalf("up over a clashing function: %v", err)
	}
	rows := appliedRows(t, db)
	if len(rows) != 1 || !strings.Contains(rows[0], " 0001 ") {
		t.Fatalf("bun_migrations after a failed 0002: %q", rows)
	}
	lines := statusLines(t, db)
	if lines[0] != names[0]+"\tapplied (group 1)" || lines[1] != names[1]+"\tpending" {
		t.Fatalf("status after a failed 0002: %q", lines)
	}
	// 0002 ran in one transaction: none of its triggers exist.
	var triggers int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal").Scan(&triggers); err != nil {
		t.Fatal(err)
	}
	if triggers != 0 {
		t.Fatalf("%d triggers left by the failed step", triggers)
	}

	if _, err := db.ExecContext(ctx, `DROP FUNCTION brokkr_touch_updated_at()`); err != nil {
		t.Fatal(err)
	}
	if err := migrations.Up(ctx, db); err != nil {
		t.Fatalf("up after removing the clash: %v", err)
	}
	rows = appliedRows(t, db)
	if len(rows) != len(names) {
		t.Fatalf("bun_migrations after the retry: %q", rows)
	}
	// The result is the same schema as a clean up.
	clean, cleanURL := emptyDB(t)
	if err := migrations.Up(ctx, clean); err != nil {
		t.Fatal(err)
	}
	if a, b := schemaDump(t, cleanURL), schemaDump(t, dbURL); a != b {
		t.Fatalf("schema after a failed and retried up differs from a clean up: %s", diff(a, b))
	}
}

// The same guarantee with bun's migrator as we configure it, on a step whose
// body fails after writing in its transaction.
func TestFailingGoStepIsNotMarkedApplied(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, _ := emptyDB(t)

	ms := migrate.NewMigrations()
	boom := errors.New("boom")
	ms.Add(migrate.Migration{Name: "20990101000001", Comment: "ok",
		Up: func(ctx context.Context, _ *migrate.Migrator, _ *migrate.Migration) error {
			_, err := db.ExecContext(ctx, "CREATE TABLE ok_step (id int)")
			return err
		},
	})
	ms.Add(migrate.Migration{Name: "20990101000002", Comment: "fails",
		Up: func(ctx context.Context, _ *migrate.Migrator, _ *migrate.Migration) error {
			return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				if _, err := tx.ExecContext(ctx, "CREATE TABLE failed_step (id int)"); err != nil {
					return err
				}
				return boom
			})
		},
	})
	m := migrate.NewMigrator(db, ms, migrate.WithMarkAppliedOnSuccess(true))
	if err := m.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Migrate(ctx); !errors.Is(err, boom) {
		t.Fatalf("migrate: %v, want boom", err)
	}
	rows := appliedRows(t, db)
	if len(rows) != 1 || !strings.Contains(rows[0], "20990101000001") {
		t.Fatalf("bun_migrations: %q, want only the first step", rows)
	}
	var failedTable bool
	if err := db.QueryRowContext(ctx, "SELECT to_regclass('failed_step') IS NOT NULL").Scan(&failedTable); err != nil {
		t.Fatal(err)
	}
	if failedTable {
		t.Fatal("the failed step's table survived its rollback")
	}
}

// Replicas starting together all run Up; each must succeed and the steps
// must be applied once.
func TestConcurrentUpAppliesOnce(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, _ := emptyDB(t)
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = migrations.Up(ctx, db) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Up #%d: %v", i, err)
		}
	}
	if rows := appliedRows(t, db); len(rows) != len(stepNames()) {
		t.Fatalf("bun_migrations after concurrent ups: %q", rows)
	}
}

// A migrator killed while migrating must not block every later start.
func TestUpIgnoresAStaleBunLockRow(t *testing.T) {
	f := setup(t)
	f.exec(`INSERT INTO bun_migration_locks (table_name) VALUES ('bun_migrations')`)
	if err := migrations.Up(f.ctx, f.db.Bun); err != nil {
		t.Fatalf("up with a stale lock row: %v", err)
	}
	if err := migrations.DownOne(f.ctx, f.db.Bun); err != nil {
		t.Fatalf("down with a stale lock row: %v", err)
	}
	if n := len(appliedRows(t, f.db.Bun)); n != 0 {
		t.Fatalf("%d steps applied after down", n)
	}
}

func TestUpRefusesAOneConnectionPool(t *testing.T) {
	t.Parallel()
	db, _ := emptyDB(t)
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := migrations.Up(ctx, db)
	if err == nil || !strings.Contains(err.Error(), "at least 2 connections") {
		t.Fatalf("up on a one-connection pool: %v", err)
	}
	db.SetMaxOpenConns(2)
	if err := migrations.Up(ctx, db); err != nil {
		t.Fatalf("up on a two-connection pool: %v", err)
	}
}

// Migrations lift the pool's statement_timeout for themselves (issue 8,
// item 2): waiting for another migrator's lock, or a step that rewrites a
// large table, may take longer than a request's statement may.
func TestMigrationsLiftStatementTimeout(t *testing.T) {
	t.Parallel()
	_, dbURL := emptyDB(t)
	pool, err := models.OpenWith(dbURL, models.Options{StatementTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	holder, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(context.Background())
	// Another migrator holds the lock for a while.
	tx, err := holder.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "SELECT pg_advisory_xact_lock($1)", int64(0x62726f6b6b726d67)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- migrations.Up(t.Context(), pool) }()
	time.Sleep(400 * time.Millisecond)
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("migrating under a 100 ms statement_timeout: %v", err)
	}
	var v string
	if err := pool.QueryRowContext(t.Context(), "SHOW statement_timeout").Scan(&v); err != nil || v != "100ms" {
		t.Fatalf("statement_timeout after the migration = %q (%v): the lift must stay inside its transactions", v, err)
	}
}
