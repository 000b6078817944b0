// Command testpg starts and stops the embedded PostgreSQL cluster that the
// test suite runs against (see package dbtest). `make test` uses it:
//
//	testpg [-durable] start [dir]   start (creating if needed) and print the admin URL
//	testpg stop [dir]               stop the server, whoever started it
//
// dir defaults to .brokkr/test in the current directory. A cluster is created
// with fsync off (fast, for throwaway data) unless -durable is given (for
// benchmarks, which should measure what production pays). When start has
// just started the server, nobody can be using it yet, so it drops what
// killed test runs left behind: brokkr_test_* databases and templates of
// older migrations.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/jackc/pgx/v5"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/localpg"
)

func main() {
	durable := flag.Bool("durable", false, "create the cluster with fsync on")
	flag.Usage = func() { fmt.Fprintln(os.Stderr, "usage: testpg [-durable] start|stop [dir]") }
	flag.Parse()
	args := flag.Args()
	if len(args) < 1 || len(args) > 2 {
		flag.Usage()
		os.Exit(2)
	}
	dir := ".brokkr/test"
	if len(args) == 2 {
		dir = args[1]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	switch args[0] {
	case "start":
		c, err := localpg.StartWith(ctx, dir, logger, localpg.Options{NoSync: !*durable, Detached: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, "testpg:", err)
			os.Exit(1)
		}
		if c.Started() {
			if err := clean(ctx, c.URL("postgres")); err != nil {
				fmt.Fprintln(os.Stderr, "testpg:", err)
				os.Exit(1)
			}
		}
		fmt.Println(c.URL("postgres"))
	case "stop":
		if err := localpg.Shutdown(ctx, dir, logger); err != nil {
			fmt.Fprintln(os.Stderr, "testpg:", err)
			os.Exit(1)
		}
	default:
		flag.Usage()
		os.Exit(2)
	}
}

// clean drops leftover test databases and stale templates.
func clean(ctx context.Context, adminURL string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database
		WHERE (datname LIKE 'brokkr\_test\_%' OR datname LIKE 'brokkr\_tmpl\_%') AND datname <> $1`,
		dbtest.TemplateName())
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, name := range names {
		id := pgx.Identifier{name}.Sanitize()
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+id+" IS_TEMPLATE false"); err != nil {
			return err
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE "+id+" WITH (FORCE)"); err != nil {
			return err
		}
	}
	return nil
}
