package models

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

// MaxOpenConns is the pool size of Open: enough for concurrent requests and
// the feed's replays without exhausting a default PostgreSQL (100 connections)
// across a couple of replicas.
const MaxOpenConns = 40

// Open returns bun on a pgx database/sql pool for dsn, configured the way the
// broker runs: pgx's exec query mode, because bun sends every query as final
// SQL text (arguments inlined), so pgx's default statement cache would
// prepare each distinct text in an extra round trip and never reuse it
// (measured: a bun insert 1.56 → 0.52 ms, the key lookup 0.35 → 0.26 ms);
// the few statements every request of a hot path sends are written with
// parameters and prepared once per connection instead (scanPrepared: the
// key lookup 0.26 → 0.06 ms); and a pool that keeps its connections
// (database/sql keeps only 2 idle by default, so concurrent clients
// reconnected per request).
func Open(dsn string) (*bun.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("models.Open: %w", err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	sqldb := stdlib.OpenDB(*cfg)
	sqldb.SetMaxOpenConns(MaxOpenConns)
	sqldb.SetMaxIdleConns(MaxOpenConns)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	return bun.NewDB(sqldb, pgdialect.New()), nil
}
