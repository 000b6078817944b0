// Package migrations holds the Brokkr schema as bun Go migrations
// (DESIGN §2, §3.5). Each step is one Go file that registers its up and
// down functions with Migrations; the SQL of tables, triggers, functions and
// indexes sits beside it under sql/ and is embedded into the binary.
package migrations

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"sort"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/migrate"
)

// Migrations is the ordered set of schema steps.
var Migrations = migrate.NewMigrations()

//go:embed sql/*.sql
var sqlFiles embed.FS

// execFile returns a migration function that runs the embedded SQL file in
// one transaction. The SQL goes to the driver untouched (bun's own query
// formatter would treat '?' as a placeholder).
func execFile(name string) migrate.MigrationFunc {
	return func(ctx context.Context, db *bun.DB) error {
		body, err := sqlFiles.ReadFile("sql/" + name)
		if err != nil {
			return fmt.Errorf("migrations: read %s: %w", name, err)
		}
		return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			if _, err := tx.Tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("migrations: %s: %w", name, err)
			}
			return nil
		})
	}
}

// up and down return the functions of the step whose SQL lives in
// sql/<step>.up.sql and sql/<step>.down.sql. Each step file calls
// Migrations.MustRegister(up(step), down(step)) itself, because bun names a
// migration after the file that registers it.
func up(step string) migrate.MigrationFunc   { return execFile(step + ".up.sql") }
func down(step string) migrate.MigrationFunc { return execFile(step + ".down.sql") }

// Fingerprint is a hash of every embedded SQL file: databases built from a
// different schema have a different fingerprint (test templates use it).
func Fingerprint() string {
	h := sha256.New()
	names, _ := fs.Glob(sqlFiles, "sql/*.sql")
	sort.Strings(names)
	for _, n := range names {
		b, _ := sqlFiles.ReadFile(n)
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// NewMigrator returns a migrator that records a step as applied only once it
// has succeeded.
func NewMigrator(db *bun.DB) *migrate.Migrator {
	return migrate.NewMigrator(db, Migrations, migrate.WithMarkAppliedOnSuccess(true))
}

// Up applies every pending step. On an up-to-date database it does nothing.
func Up(ctx context.Context, db *bun.DB) error {
	m := NewMigrator(db)
	if err := m.Init(ctx); err != nil {
		return fmt.Errorf("migrations: init: %w", err)
	}
	if err := m.Lock(ctx); err != nil {
		return fmt.Errorf("migrations: lock: %w", err)
	}
	defer m.Unlock(ctx) //nolint:errcheck
	if _, err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrations: up: %w", err)
	}
	return nil
}

// DownOne rolls back the most recently applied step (nothing when none is).
func DownOne(ctx context.Context, db *bun.DB) error {
	m := NewMigrator(db)
	if err := m.Init(ctx); err != nil {
		return fmt.Errorf("migrations: init: %w", err)
	}
	if err := m.Lock(ctx); err != nil {
		return fmt.Errorf("migrations: lock: %w", err)
	}
	defer m.Unlock(ctx) //nolint:errcheck
	ms, err := m.AppliedMigrations(ctx)
	if err != nil {
		return fmt.Errorf("migrations: applied: %w", err)
	}
	if len(ms) == 0 {
		return nil
	}
	if _, err := m.Rollback(ctx); err != nil {
		return fmt.Errorf("migrations: down: %w", err)
	}
	return nil
}

// Down rolls back every applied step, newest first.
func Down(ctx context.Context, db *bun.DB) error {
	m := NewMigrator(db)
	if err := m.Init(ctx); err != nil {
		return fmt.Errorf("migrations: init: %w", err)
	}
	for {
		ms, err := m.AppliedMigrations(ctx)
		if err != nil {
			return fmt.Errorf("migrations: applied: %w", err)
		}
		if len(ms) == 0 {
			return nil
		}
		if err := DownOne(ctx, db); err != nil {
			return err
		}
	}
}

// Status writes one line per known step: applied or pending.
func Status(ctx context.Context, db *bun.DB, w io.Writer) error {
	m := NewMigrator(db)
	if err := m.Init(ctx); err != nil {
		return fmt.Errorf("migrations: init: %w", err)
	}
	ms, err := m.MigrationsWithStatus(ctx)
	if err != nil {
		return fmt.Errorf("migrations: status: %w", err)
	}
	for _, mg := range ms {
		state := "pending"
		if mg.IsApplied() {
			state = "applied (group " + fmt.Sprint(mg.GroupID) + ")"
		}
		fmt.Fprintf(w, "%s_%s\t%s\n", mg.Name, mg.Comment, state)
	}
	return nil
}
