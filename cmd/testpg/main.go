// Command testpg starts and stops the embedded PostgreSQL cluster that the
// test suite runs against (see package dbtest). `make test` uses it:
//
//	testpg [-durable] start [dir]   start (creating if needed) and print the admin URL
//	testpg stop [dir]               stop the server, whoever started it
//
// dir defaults to .brokkr/test in the current directory. A cluster is created
// with fsync off (fast, for throwaway data) unless -durable is given (for
// benchmarks, which should measure what production pays).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

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
		c, err := localpg.StartWith(ctx, dir, logger, localpg.Options{NoSync: !*durable})
		if err != nil {
			fmt.Fprintln(os.Stderr, "testpg:", err)
			os.Exit(1)
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
