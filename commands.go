package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/cli"
	"github.com/brokkr/brokkr/logging"
	"github.com/brokkr/brokkr/migrations"
	"github.com/brokkr/brokkr/models"
)

func main() {
	os.Exit(cli.Main(rootCommand()))
}

// databaseEnv is the environment of every command that opens the database.
const databaseEnv = "DATABASE_URL\tPostgreSQL to use; unset: the embedded cluster under $BROKKR_DATA_DIR/pg\n" +
	"BROKKR_DATA_DIR\twhere the embedded cluster lives (default .brokkr)\n" +
	"BROKKR_PG_BIN\tthe PostgreSQL server binaries' directory (default: PATH, else the newest /usr/lib/postgresql/*/bin)\n" +
	"BROKKR_STATEMENT_TIMEOUT\tevery statement's bound (default 10s; 0: none)\n" +
	"BROKKR_LOG_LEVEL\tdebug, info (default), warn or error\n" +
	"BROKKR_LOG_FORMAT\ttext (default) or json"

// serveEnv is serve's environment (README, "Running", explains each).
const serveEnv = databaseEnv + "\n" +
	"BROKKR_LISTEN\tlisten address (default :8080)\n" +
	"BROKKR_ALLOWED_ORIGINS\tcomma-separated origin patterns allowed to open websockets from a browser\n" +
	"BROKKR_RATE_LIMIT_PER_MINUTE\ta generator's default budget (default 600)\n" +
	"BROKKR_MAX_BODY_BYTES\trequest body limit (default 1048576)\n" +
	"BROKKR_MAX_TOKENS, BROKKR_MAX_FIELDS, BROKKR_MAX_ALIASES\ta document's caps (default 10000, 1000, 200)\n" +
	"BROKKR_MAX_DEPTH, BROKKR_MAX_COMPLEXITY\tdepth and expanded fields of an operation (default 15, 10000)\n" +
	"BROKKR_ROW_BUDGET\tthe rows one answer may hold (default 50000)\n" +
	"BROKKR_SHUTDOWN_TIMEOUT\tbound on graceful shutdown (default 10s)\n" +
	"BROKKR_READ_TIMEOUT, BROKKR_WRITE_TIMEOUT, BROKKR_IDLE_TIMEOUT\tHTTP timeouts (default 30s, 60s, 120s)\n" +
	"BROKKR_MAX_WEBSOCKETS_PER_KEY\twebsockets one key may have open (default 32; 0: no bound)\n" +
	"GOGC\tthe garbage collector's target (serve sets 200 when unset)"

// rootCommand is brokkr: the broker's commands and the CLI's.
func rootCommand() *cobra.Command {
	var noMigrate bool
	serve := &cobra.Command{
		Use:   "serve",
		Short: "Serve GraphQL (the default command); applies pending migrations first",
		Long: `Serve the GraphQL API at /query (HTTP and websockets), GraphiQL at /, /healthz,
/readyz and /metrics, on $BROKKR_LISTEN. Pending migrations are applied first
(--no-migrate: not). The first start creates the admin key and prints it once.
SIGTERM, SIGINT and SIGHUP shut it down gracefully.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return brokerCommand(cmd, func(ctx context.Context, cfg config, logger *slog.Logger) error {
				if cfg.GCPercent > 0 {
					debug.SetGCPercent(cfg.GCPercent)
				}
				return serve(ctx, cfg, noMigrate, cmd.OutOrStdout(), logger)
			})
		},
	}
	serve.Flags().BoolVar(&noMigrate, "no-migrate", false, "do not apply pending migrations at start")
	cli.SetEnv(serve, serveEnv)

	root := cli.NewRoot(serve.RunE, serve, migrateCommand(), adminCommand())
	root.Flags().AddFlag(serve.Flags().Lookup("no-migrate"))
	cli.SetEnv(root, serveEnv+"\n"+strings.SplitN(cli.ClientEnv, "\n", 3)[0]+"\n"+strings.SplitN(cli.ClientEnv, "\n", 3)[1])
	return root
}

// brokerCommand runs one of the broker's own commands with its
// configuration and logger; a failure is logged (the broker's log is where
// operators look) and ends the process with status 1.
func brokerCommand(cmd *cobra.Command, fn func(ctx context.Context, cfg config, logger *slog.Logger) error) error {
	logger, err := logging.FromEnv(cmd.ErrOrStderr()) // BROKKR_LOG_LEVEL, BROKKR_LOG_FORMAT
	if err == nil {
		var cfg config
		if cfg, err = loadConfig(); err == nil {
			err = fn(cmd.Context(), cfg, logger)
		}
	}
	if err != nil {
		logger.Error("brokkr failed", "err", err)
		return cli.Reported(err)
	}
	return nil
}

func migrateCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:       "migrate up|down|status",
		Short:     "Run the schema migrations by hand",
		Long:      "up applies the pending migrations; down rolls back the last one (--all: every one); status lists them.",
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"up", "down", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			return brokerCommand(cmd, func(ctx context.Context, cfg config, logger *slog.Logger) error {
				return withDB(ctx, cfg, logger, func(db *bun.DB, _ string) error {
					return migrate(ctx, db, args[0], all, cmd.OutOrStdout())
				})
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "with down: roll back every applied step")
	cli.SetEnv(cmd, databaseEnv)
	return cmd
}

func migrate(ctx context.Context, db *bun.DB, sub string, all bool, out interface{ Write([]byte) (int, error) }) error {
	switch sub {
	case "up":
		if err := migrations.Up(ctx, db); err != nil {
			return err
		}
	case "down":
		down := migrations.DownOne
		if all {
			down = migrations.Down
		}
		if err := down(ctx, db); err != nil {
			return err
		}
	}
	return migrations.Status(ctx, db, out)
}

func adminCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer the broker on its machine (rotate-key)",
		Args:  cobra.NoArgs,
	}
	rotate := &cobra.Command{
		Use:   "rotate-key",
		Short: "Replace the admin API key and print the new one once",
		Long: `Replace the admin API key in the database directly (for a lost key; with the key,
"brokkr keys rotate" does it through the broker) and print the new one once.
The old key stops working at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return brokerCommand(cmd, func(ctx context.Context, cfg config, logger *slog.Logger) error {
				return withDB(ctx, cfg, logger, func(db *bun.DB, _ string) error {
					if err := migrations.Up(ctx, db); err != nil {
						return err
					}
					key, err := models.RotateAdminKey(ctx, db)
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "New admin API key (shown once; the old key no longer works):\n\n    %s\n\n", key)
					return nil
				})
			})
		},
	}
	cmd.AddCommand(rotate)
	cli.SetEnv(cmd, databaseEnv)
	return cmd
}
