// Command testkube builds, starts and stops the etcd and kube-apiserver that
// the tests of the kubernetes applier run against (package localkube).
// `make kube` and `make test` use it:
//
//	testkube build          build the binaries once per machine (minutes; prints progress) and print their directory
//	testkube start [dir]    start the servers (or find them running) and print the path of an admin kubeconfig
//	testkube stop [dir]     stop the servers, whoever started them
//
// dir defaults to .brokkr/kube in the current directory. build must run inside
// the repository (it builds the module in localkube/build).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/brokkr/brokkr/localkube"
)

func main() {
	flag.Usage = func() { fmt.Fprintln(os.Stderr, "usage: testkube build | start [dir] | stop [dir]") }
	flag.Parse()
	args := flag.Args()
	if len(args) < 1 || len(args) > 2 || (args[0] == "build" && len(args) > 1) {
		flag.Usage()
		os.Exit(2)
	}
	dir := ".brokkr/kube"
	if len(args) == 2 {
		dir = args[1]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := run(ctx, args[0], dir, logger); err != nil {
		fmt.Fprintln(os.Stderr, "testkube:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, command, dir string, logger *slog.Logger) error {
	switch command {
	case "build":
		module, err := localkube.ModuleDir()
		if err != nil {
			return err
		}
		bin, err := localkube.Build(ctx, module, os.Stderr)
		if err != nil {
			return err
		}
		fmt.Println(bin)
	case "start":
		s, err := localkube.Start(ctx, dir, logger)
		if err != nil {
			return err
		}
		fmt.Println(s.Kubeconfig())
	case "stop":
		return localkube.Shutdown(ctx, dir, logger)
	default:
		flag.Usage()
		os.Exit(2)
	}
	return nil
}
