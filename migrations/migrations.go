// Package migrations holds the Brokkr schema as bun Go migrations
// (DESIGN §2, §3.5). Each step is one Go file that registers its up and
// down functions with Migrations; the SQL of tables, triggers, functions and
// indexes sits beside it under sql/ and is embedded into the binary.
package migrations

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
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
			// A step may rewrite large tables: the pool's statement_timeout
			// (models.Open) is for requests, not for migrations.
			if _, err := tx.Tx.ExecContext(ctx, liftStatementTimeout); err != nil {
				return fmt.Errorf("migrations: %s: %w", name, err)
			}
			if _, err := tx.Tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("migrations: %s: %w", name, err)
			}
			return nil
		})
	}
}

// liftStatementTimeout lifts statement_timeout for the rest of the
// transaction it runs in.
const liftStatementTimeout = "SET LOCAL statement_timeout = 0"

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

// lockKey is the PostgreSQL advisory lock that serialises migrators on one
// database ("brokkrmg").
const lockKey int64 = 0x62726f6b6b726d67

// locked runs fn with a migrator while holding lockKey. Replicas that start
// together wait for each other instead of failing, and the one that comes
// second finds nothing pending. The lock is transaction-scoped on a
// connection of its own, so PostgreSQL drops it whatever happens to this
// process; bun's table lock (bun_migration_locks) is not used, because a
// migrator killed while holding it would block every later start. The lock
// holds one connection of the pool and the steps run on another, so a pool
// limited to one connection is refused rather than left to deadlock.
func locked(ctx context.Context, db *bun.DB, fn func(*migrate.Migrator) error) (err error) {
	if n := db.DB.Stats().MaxOpenConnections; n == 1 {
		return errors.New("migrations: the connection pool needs at least 2 connections (one holds the migration lock)")
	}
	tx, err := db.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrations: lock: %w", err)
	}
	defer func() { err = errors.Join(err, ignoreDone(tx.Rollback())) }()
	// Waiting for another replica's migration may take longer than a
	// statement of a request may.
	if _, err := tx.ExecContext(ctx, liftStatementTimeout); err != nil {
		return fmt.Errorf("migrations: lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey); err != nil {
		return fmt.Errorf("migrations: lock: %w", err)
	}
	m := NewMigrator(db)
	if err := m.Init(ctx); err != nil {
		return fmt.Errorf("migrations: init: %w", err)
	}
	return fn(m)
}

func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// Up applies every pending step. On an up-to-date database it does nothing.
func Up(ctx context.Context, db *bun.DB) error {
	return locked(ctx, db, func(m *migrate.Migrator) error {
		if _, err := m.Migrate(ctx); err != nil {
			return fmt.Errorf("migrations: up: %w", err)
		}
		return nil
	})
}

// DownOne rolls back the most recently applied group of steps (nothing when
// none is applied).
func DownOne(ctx context.Context, db *bun.DB) error {
	return locked(ctx, db, func(m *migrate.Migrator) error {
		_, err := downOne(ctx, m)
		return err
	})
}

// Down rolls back every applied step, newest first.
func Down(ctx context.Context, db *bun.DB) error {
	return locked(ctx, db, func(m *migrate.Migrator) error {
		for {
			more, err := downOne(ctx, m)
			if err != nil || !more {
				return err
			}
		}
	})
}

// downOne rolls back the last group; more reports whether one was applied.
func downOne(ctx context.Context, m *migrate.Migrator) (more bool, err error) {
	ms, err := m.AppliedMigrations(ctx)
	if err != nil {
		return false, fmt.Errorf("migrations: applied: %w", err)
	}
	if len(ms) == 0 {
		return false, nil
	}
	if _, err := m.Rollback(ctx); err != nil {
		return false, fmt.Errorf("migrations: down: %w", err)
	}
	return true, nil
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
