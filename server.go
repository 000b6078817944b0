// Command brokkr is the Brokkr control plane: a GraphQL broker through which
// generators submit deployment objects to stacks and agents in clusters
// receive them (DESIGN §1), and its command line (package cli): the
// generators' and admins' commands and the reference agent.
//
//	brokkr [serve] [--no-migrate]     serve GraphQL on $BROKKR_LISTEN (default :8080)
//	brokkr migrate up|down|status     run the schema migrations by hand
//	brokkr admin rotate-key           replace the admin API key and print the new one
//	brokkr push|stacks|agents|…       the CLI (brokkr --help lists it all)
//	brokkr agent run                  the reference agent
//
// commands.go holds the broker's commands; this file runs the broker.
// With $DATABASE_URL it uses that PostgreSQL; without it, it runs an embedded
// default cluster under $BROKKR_DATA_DIR (default ./.brokkr) built from the
// PostgreSQL binaries on the machine, and stops it again on exit unless
// another broker still uses it (localpg: the last user stops it; a cluster
// left running by a killed broker is taken over).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/feed"
	"github.com/brokkr/brokkr/localpg"
	"github.com/brokkr/brokkr/migrations"
	"github.com/brokkr/brokkr/models"
	"github.com/brokkr/brokkr/wstransport"
)

// config is everything the broker reads from its environment.
type config struct {
	DatabaseURL     string
	Listen          string
	DataDir         string
	AllowedOrigins  []string
	RateLimit       int
	MaxBodyBytes    int64
	MaxTokens       int
	MaxFields       int
	MaxAliases      int
	MaxDepth        int
	MaxComplexity   int
	RowBudget       int
	ShutdownTimeout time.Duration
	// StatementTimeout is every pooled connection's statement_timeout:
	// 0 takes models.DefaultStatementTimeout, negative sets none.
	StatementTimeout time.Duration
	// HTTP timeouts (http.Server): reading a whole request, headers and
	// body; writing an answer, from its first byte (writeDeadline); a
	// keep-alive connection waiting for its next request. Websockets are
	// hijacked connections, which net/http clears of every deadline.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	// MaxWebsocketsPerKey: 0 takes the api default; negative, no bound.
	MaxWebsocketsPerKey int
	// ReadPlannerOff answers every query with gqlgen's executor
	// (BROKKR_READ_PLANNER=off): a switch should the planner misbehave.
	ReadPlannerOff bool
	// GCPercent is the collector's target heap growth that serve sets;
	// 0 leaves it to the runtime (GOGC set in the environment).
	GCPercent int
}

// defaultGCPercent is serve's GOGC when the environment sets none. A large
// read (BenchmarkDashboardQuery: 10,000 events) allocates ~130 MB of short-lived
// gqlgen and row garbage over a live heap of a few tens of MB, so at Go's
// default of 100 the collector ran several cycles per read and took about a
// fifth of its CPU; 200 cuts that CPU by ~10-15% for ~30% more peak memory.
const defaultGCPercent = 200

func loadConfig() (config, error) {
	c := config{
		DatabaseURL: os.Getenv("DATABASE_URL"),
		Listen:      envOr("BROKKR_LISTEN", ":8080"),
		DataDir:     envOr("BROKKR_DATA_DIR", ".brokkr"),
		// Zero limits take the api package's defaults.
		ShutdownTimeout: 10 * time.Second,
		ReadTimeout:     30 * time.Second,
		WriteTimeout:    60 * time.Second,
		IdleTimeout:     120 * time.Second,
		GCPercent:       defaultGCPercent,
	}
	if os.Getenv("GOGC") != "" {
		c.GCPercent = 0 // the runtime has applied it
	}
	if v := os.Getenv("BROKKR_ALLOWED_ORIGINS"); v != "" {
		for _, o := range strings.Split(v, ",") {
			if o = strings.TrimSpace(o); o != "" {
				c.AllowedOrigins = append(c.AllowedOrigins, o)
			}
		}
	}
	ints := []struct {
		env string
		dst *int
	}{
		{"BROKKR_RATE_LIMIT_PER_MINUTE", &c.RateLimit},
		{"BROKKR_MAX_TOKENS", &c.MaxTokens},
		{"BROKKR_MAX_FIELDS", &c.MaxFields},
		{"BROKKR_MAX_ALIASES", &c.MaxAliases},
		{"BROKKR_MAX_DEPTH", &c.MaxDepth},
		{"BROKKR_MAX_COMPLEXITY", &c.MaxComplexity},
		{"BROKKR_ROW_BUDGET", &c.RowBudget},
	}
	for _, i := range ints {
		if v := os.Getenv(i.env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return c, fmt.Errorf("%s must be a positive integer, got %q", i.env, v)
			}
			*i.dst = n
		}
	}
	switch v := os.Getenv("BROKKR_READ_PLANNER"); v {
	case "", "on":
	case "off":
		c.ReadPlannerOff = true
	default:
		return c, fmt.Errorf("BROKKR_READ_PLANNER must be on or off, got %q", v)
	}
	if v := os.Getenv("BROKKR_MAX_BODY_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return c, fmt.Errorf("BROKKR_MAX_BODY_BYTES must be a positive integer, got %q", v)
		}
		c.MaxBodyBytes = n
	}
	if v := os.Getenv("BROKKR_STATEMENT_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return c, fmt.Errorf("BROKKR_STATEMENT_TIMEOUT must be a duration (0 for none), got %q", v)
		}
		c.StatementTimeout = d
		if d == 0 {
			c.StatementTimeout = -1
		}
	}
	if v := os.Getenv("BROKKR_MAX_WEBSOCKETS_PER_KEY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return c, fmt.Errorf("BROKKR_MAX_WEBSOCKETS_PER_KEY must be a positive integer, or 0 for no bound, got %q", v)
		}
		c.MaxWebsocketsPerKey = n
		if n == 0 {
			c.MaxWebsocketsPerKey = -1
		}
	}
	durations := []struct {
		env string
		dst *time.Duration
	}{
		{"BROKKR_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout},
		{"BROKKR_READ_TIMEOUT", &c.ReadTimeout},
		{"BROKKR_WRITE_TIMEOUT", &c.WriteTimeout},
		{"BROKKR_IDLE_TIMEOUT", &c.IdleTimeout},
	}
	for _, d := range durations {
		if v := os.Getenv(d.env); v != "" {
			n, err := time.ParseDuration(v)
			if err != nil || n <= 0 {
				return c, fmt.Errorf("%s must be a positive duration, got %q", d.env, v)
			}
			*d.dst = n
		}
	}
	return c, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// withDB opens the configured database (starting the embedded default when
// DATABASE_URL is empty), runs fn, and closes everything again.
func withDB(ctx context.Context, cfg config, logger *slog.Logger, fn func(db *bun.DB, dsn string) error) error {
	dsn := cfg.DatabaseURL
	if dsn == "" {
		dir, err := filepath.Abs(filepath.Join(cfg.DataDir, "pg"))
		if err != nil {
			return err
		}
		logger.Info("DATABASE_URL is not set: using the embedded PostgreSQL", "dir", dir)
		cluster, err := localpg.Start(ctx, dir, logger)
		if err != nil {
			return fmt.Errorf("embedded PostgreSQL: %w", err)
		}
		defer func() {
			if err := cluster.Stop(); err != nil {
				logger.Error("stopping the embedded PostgreSQL", "err", err)
			}
		}()
		if err := cluster.EnsureDatabase(ctx, "brokkr"); err != nil {
			return fmt.Errorf("embedded PostgreSQL: %w", err)
		}
		dsn = cluster.URL("brokkr")
	}
	db, err := models.OpenWith(dsn, models.Options{StatementTimeout: cfg.StatementTimeout})
	if err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	defer db.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		return fmt.Errorf("connecting to the database: %w", err)
	}
	return fn(db, dsn)
}

func serve(ctx context.Context, cfg config, noMigrate bool, out io.Writer, logger *slog.Logger) error {
	return withDB(ctx, cfg, logger, func(db *bun.DB, dsn string) error {
		if !noMigrate {
			if err := migrations.Up(ctx, db); err != nil {
				return err
			}
		}
		key, created, err := models.EnsureAdminKey(ctx, db)
		if err != nil {
			return fmt.Errorf("admin key: %w", err)
		}
		if created {
			fmt.Fprintf(out, "\nAdmin API key (shown once; keep it, or replace it with `brokkr admin rotate-key`):\n\n    %s\n\n", key)
		}

		// Everything long-lived hangs off runCtx; cancelling it ends the feed
		// and every open websocket.
		runCtx, cancelRun := context.WithCancel(context.Background())
		defer cancelRun()

		sessions := wstransport.NewSessions()
		hub := newHub(db, dsn, logger, sessions)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hub.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("feed stopped", "err", err)
			}
		}()
		defer wg.Wait()
		defer cancelRun()

		handler, err := api.New(api.Config{
			DB:                        db,
			Feed:                      hub,
			Logger:                    logger,
			AllowedOrigins:            cfg.AllowedOrigins,
			MaxBodyBytes:              cfg.MaxBodyBytes,
			MaxTokens:                 cfg.MaxTokens,
			MaxFields:                 cfg.MaxFields,
			MaxAliases:                cfg.MaxAliases,
			MaxDepth:                  cfg.MaxDepth,
			MaxComplexity:             cfg.MaxComplexity,
			RowBudget:                 cfg.RowBudget,
			DisableReadPlanner:        cfg.ReadPlannerOff,
			DefaultRateLimitPerMinute: cfg.RateLimit,
			MaxWebsocketsPerKey:       cfg.MaxWebsocketsPerKey,
			Sessions:                  sessions,
		})
		if err != nil {
			return err
		}
		srv := httpServer(cfg, handler)
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return err
		}
		logger.Info("brokkr serving", "addr", ln.Addr().String(), "graphql", "/query", "graphiql", "/")

		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}

		// Graceful shutdown (DESIGN §6): stop accepting, let in-flight
		// requests finish, close websockets with 1012 (service restart:
		// clients reconnect and resume with `after`), all within a bound.
		logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
		shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		sessions.CloseAll()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			logger.Warn("shutdown did not finish in time; closing remaining connections", "err", err)
			_ = srv.Close()
		}
		return nil
	})
}

// newHub is the subscription hub, tied to the open websockets: the feed
// closes a principal's connections when it sees its key rotated or it
// deleted (on every replica, through NOTIFY), and re-checks them all
// whenever its listener (re)connects; shutdown closes them all.
func newHub(db *bun.DB, dsn string, logger *slog.Logger, sessions *wstransport.Sessions) *feed.Hub {
	return feed.New(db, dsn, logger, feed.Options{
		OnRevoke: sessions.Revoke, OnPrincipalChange: sessions.Recheck, OnListening: sessions.RecheckAll,
	})
}

// httpServer is the server for handler with the configured timeouts.
func httpServer(cfg config, handler http.Handler) *http.Server {
	return &http.Server{
		Addr:              cfg.Listen,
		Handler:           writeDeadline(cfg.WriteTimeout, handler),
		ReadHeaderTimeout: min(10*time.Second, cfg.ReadTimeout),
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
	}
}

// writeDeadline gives every HTTP answer the whole write timeout from its
// first byte. http.Server's WriteTimeout alone counts from the end of the
// request's headers, so a large dashboard read that took long to compute
// (a request's work is bounded by statement timeouts and ends when its
// client goes, not by this) would lose its answer after the work was done;
// the timeout is there to cut a client that stops reading. Websocket
// upgrades are left alone: net/http clears a hijacked connection's
// deadlines.
func writeDeadline(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(&deadlineWriter{ResponseWriter: w, d: d}, r)
	})
}

// deadlineWriter sets the connection's write deadline when the answer
// starts. Unwrap lets http.ResponseController reach the connection.
type deadlineWriter struct {
	http.ResponseWriter
	d     time.Duration
	armed bool
}

func (w *deadlineWriter) arm() {
	if !w.armed {
		w.armed = true
		_ = http.NewResponseController(w.ResponseWriter).SetWriteDeadline(time.Now().Add(w.d))
	}
}

func (w *deadlineWriter) WriteHeader(code int) { w.arm(); w.ResponseWriter.WriteHeader(code) }

func (w *deadlineWriter) Write(b []byte) (int, error) { w.arm(); return w.ResponseWriter.Write(b) }

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
