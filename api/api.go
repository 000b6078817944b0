// Package api assembles Brokkr's HTTP handler from a configuration: GraphQL
// at /query (POST, GET and websockets), GraphiQL at / (its assets, embedded,
// under /graphiql/), /healthz, /readyz and /metrics. server.go serves it;
// end-to-end tests run it in httptest.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/uptrace/bun"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/brokkr/brokkr/auth"
	"github.com/brokkr/brokkr/graph"
	"github.com/brokkr/brokkr/graph/readplan"
	"github.com/brokkr/brokkr/graph/scalar"
	"github.com/brokkr/brokkr/graphiql"
	"github.com/brokkr/brokkr/models"
	"github.com/brokkr/brokkr/reqtext"
	"github.com/brokkr/brokkr/wstransport"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxBodyBytes              = 1 << 20 // 1 MiB
	DefaultMaxTokens                 = 10_000
	DefaultMaxFields                 = 1_000
	DefaultMaxAliases                = 200
	DefaultMaxDepth                  = 15
	DefaultMaxComplexity             = 10_000 // fields of an operation, its fragments expanded
	DefaultRowBudget                 = 50_000 // rows one answer may hold (models.RowBudget)
	DefaultRateLimitPerMinute        = 600
	DefaultKeepAlive                 = 15 * time.Second
	DefaultWebsocketInitTimeout      = 10 * time.Second
	DefaultWebsocketWriteTimeout     = 10 * time.Second
	DefaultMaxWebsocketsPerKey       = 32
	readyTimeout                     = 2 * time.Second
	queryCacheSize                   = 1000
	statusRequestEntityTooLargeLabel = "request body too large"
)

// Config is what the handler is built from. Zero values take the defaults
// above; negative limits disable that limit.
type Config struct {
	DB     *bun.DB
	Feed   Feed // nil: subscriptions answer an error
	Logger *slog.Logger

	// AllowedOrigins are host patterns (path.Match syntax, as coder/websocket
	// OriginPatterns) whose web pages may open websockets and call /query
	// cross-origin (CORS). Same-origin pages and clients that send no Origin
	// (agents, CLIs) are always allowed.
	AllowedOrigins []string

	MaxBodyBytes int64
	// Document limits (graph.Limits), checked before validation.
	MaxTokens     int
	MaxFields     int
	MaxAliases    int
	MaxDepth      int
	MaxComplexity int
	// RowBudget is the number of rows one answer may hold (models.RowBudget).
	RowBudget int
	// DisableReadPlanner runs every query on gqlgen's executor, skipping the
	// compiled read path (DESIGN §8); the differential tests serve the same
	// database both ways and compare the answers byte for byte.
	DisableReadPlanner        bool
	DefaultRateLimitPerMinute int
	KeepAlive                 time.Duration
	// WebsocketInitTimeout: a websocket that sends no connection_init within
	// this time is closed (4408).
	WebsocketInitTimeout time.Duration
	// WebsocketWriteTimeout: a websocket client that takes no message for
	// this long is disconnected (its subscriptions resume with after).
	WebsocketWriteTimeout time.Duration

	// MaxWebsocketsPerKey bounds the websockets one key (one principal) may
	// have open on this server at once; one more is closed at
	// connection_init with 1013 (try again later). Zero takes the default;
	// negative: no bound.
	MaxWebsocketsPerKey int

	// Sessions tracks open websockets: the feed's revocations close a
	// principal's connections through it, and shutdown closes them all.
	// Nil: the handler keeps its own.
	Sessions *wstransport.Sessions
}

// Feed is the subscription hub as the handler uses it: what the resolvers
// need (graph.Feed), and whether it listens for the database's
// notifications (/readyz answers ready only once it does).
type Feed interface {
	graph.Feed
	Listening() bool
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	for _, l := range []struct {
		v   *int
		def int
	}{
		{&c.MaxTokens, DefaultMaxTokens}, {&c.MaxFields, DefaultMaxFields}, {&c.MaxAliases, DefaultMaxAliases},
		{&c.MaxDepth, DefaultMaxDepth}, {&c.MaxComplexity, DefaultMaxComplexity}, {&c.RowBudget, DefaultRowBudget},
	} {
		if *l.v == 0 {
			*l.v = l.def
		}
	}
	if c.DefaultRateLimitPerMinute == 0 {
		c.DefaultRateLimitPerMinute = DefaultRateLimitPerMinute
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.WebsocketInitTimeout == 0 {
		c.WebsocketInitTimeout = DefaultWebsocketInitTimeout
	}
	if c.WebsocketWriteTimeout == 0 {
		c.WebsocketWriteTimeout = DefaultWebsocketWriteTimeout
	}
	if c.MaxWebsocketsPerKey == 0 {
		c.MaxWebsocketsPerKey = DefaultMaxWebsocketsPerKey
	}
	if c.Sessions == nil {
		c.Sessions = wstransport.NewSessions()
	}
}

// New builds the handler.
func New(cfg Config) (http.Handler, error) {
	if cfg.DB == nil {
		return nil, errors.New("api.New: Config.DB is required")
	}
	cfg.defaults()
	logger := cfg.Logger
	limiter := auth.NewRateLimiter(cfg.DefaultRateLimitPerMinute)
	m := newMetrics(cfg, limiter)
	access := &accessLog{logger: logger}
	cfg.Sessions.SetObserver(access)

	authn := &auth.Authenticator{DB: cfg.DB, Logger: logger}
	presenter := graph.ErrorPresenter(logger)

	var hub graph.Feed // nil unless there is one (not an interface holding nil)
	if cfg.Feed != nil {
		hub = cfg.Feed
	}
	ws := websockets(cfg, authn)
	es := graph.NewExecutableSchema(graph.Config{
		Resolvers:  &graph.Resolver{DB: cfg.DB, Feed: hub, Logger: logger, Streams: ws.Take},
		Directives: graph.DirectiveRoot{HasRole: auth.HasRole},
	})
	srv := handler.New(es)
	// First: it sees every answer, the other extensions' refusals included.
	srv.Use(observer{m: m, ends: ws})
	srv.AddTransport(ws)
	srv.AddTransport(transport.Options{})
	srv.AddTransport(getTransport{})  // as gqlgen's transport.GET (httptransport.go)
	srv.AddTransport(postTransport{}) // as gqlgen's transport.POST
	srv.AddTransport(unsupported{})   // last: anything else gets a coded error
	// gqlparser's rules and ours; a fresh set each time, since gqlgen edits it.
	srv.SetValidationRulesFn(func() *rules.Rules {
		r := rules.NewDefaultRules()
		r.AddRule(scalar.NumberLiterals.Name, scalar.NumberLiterals.RuleFunc)
		return r
	})
	cache := lru.New[*ast.QueryDocument](queryCacheSize)
	srv.SetQueryCache(cache)
	srv.SetErrorPresenter(presenter)
	srv.SetRecoverFunc(graph.Recover(logger))

	// The document limits run before gqlgen parses and validates (see
	// graph.Limits); the parser's own token limit only backs them up.
	srv.Use(graph.Limits{MaxTokens: cfg.MaxTokens, MaxFields: cfg.MaxFields, MaxAliases: cfg.MaxAliases,
		MaxDepth: cfg.MaxDepth, MaxComplexity: cfg.MaxComplexity, Cache: cache})
	if cfg.MaxTokens > 0 {
		srv.SetParserTokenLimit(cfg.MaxTokens)
	}
	srv.Use(extension.Introspection{})
	srv.Use(auth.Guard{
		Auth:      authn,
		Limiter:   limiter,
		Activity:  &auth.Activity{DB: cfg.DB, Logger: logger},
		Presenter: presenter,
	})
	srv.Use(graph.FeedWake{Feed: hub})
	srv.Use(graph.LoaderExtension{DB: cfg.DB, RowBudget: cfg.RowBudget})
	if !cfg.DisableReadPlanner {
		// Last, so innermost: everything above has run when it answers.
		planner := readplan.New(cfg.DB, cfg.RowBudget, logger)
		srv.Use(planner)
		m.reg.MustRegister(planner.Collectors()...)
	}

	mux := http.NewServeMux()
	mux.Handle("/query", m.instrument("/query", cors(cfg.AllowedOrigins, limitBody(cfg.MaxBodyBytes, presenter, authn.Middleware(srv)))))
	ui := graphiql.New() // embedded: the page loads nothing from elsewhere
	mux.Handle("GET /{$}", m.instrument("/", ui.Page()))
	mux.Handle("GET "+graphiql.Prefix, m.instrument("/graphiql", ui.Assets()))
	mux.Handle("GET /healthz", m.instrument("/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})))
	mux.Handle("GET /readyz", m.instrument("/readyz", ready(cfg)))
	mux.Handle("GET /metrics", m.instrument("/metrics", m.handler()))
	return access.middleware(mux), nil
}

// websockets is the websocket transport, its sessions configured: one
// keep-alive goroutine for all connections (not gqlgen's ticker per
// connection), the per-key cap, and the key re-checks.
func websockets(cfg Config, authn *auth.Authenticator) *wstransport.Transport {
	cfg.Sessions.SetKeepAlive(cfg.KeepAlive)
	cfg.Sessions.SetMaxPerKey(cfg.MaxWebsocketsPerKey)
	cfg.Sessions.SetKeys(authn, cfg.Logger)
	return wstransport.New(wstransport.Config{
		OriginPatterns: cfg.AllowedOrigins,
		Init:           websocketInit(authn),
		InitTimeout:    max(cfg.WebsocketInitTimeout, 0),
		WriteTimeout:   max(cfg.WebsocketWriteTimeout, 0),
		ReadLimit:      max(cfg.MaxBodyBytes, 0),
		Sessions:       cfg.Sessions,
		Share:          graph.ShareKey,
		Logger:         cfg.Logger,
	})
}

// ready answers /readyz: ready once the database answers and the feed (if
// any) listens for its notifications.
func ready(cfg Config) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := cfg.DB.PingContext(ctx); err != nil {
			cfg.Logger.WarnContext(ctx, "api: readiness check failed", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "database unreachable\n")
			return
		}
		if cfg.Feed != nil && !cfg.Feed.Listening() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "the feed is not listening for notifications yet\n")
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
}

// websocketInit authenticates connection_init; a key sent as an HTTP
// header on the upgrade request (non-browser clients) also counts.
func websocketInit(authn *auth.Authenticator) func(context.Context, map[string]any) (context.Context, error) {
	return func(ctx context.Context, p map[string]any) (context.Context, error) {
		if _, ok := auth.ForContext(ctx); ok && p["Authorization"] == nil && p["authorization"] == nil {
			return ctx, nil
		}
		return authn.WebsocketInit(ctx, p)
	}
}

// limitBody reads at most max bytes of a request body; a larger one is
// answered 413 with a GraphQL error (BAD_USER_INPUT) before any parsing. A
// body, or a GET request's parameters, that is not UTF-8 text is answered
// 400 (BAD_USER_INPUT) the same way (package reqtext). The errors are coded
// by the presenter.
func limitBody(max int64, presenter graphql.ErrorPresenterFunc, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := func(status int, err *models.Error) { writeError(w, r, presenter, status, err) }
		if r.Method == http.MethodGet {
			if err := reqtext.CheckQuery(r.URL.RawQuery); err != nil {
				refuse(http.StatusBadRequest, models.Invalid("", "%s", err))
				return
			}
		}
		if r.Body == nil || r.Body == http.NoBody || r.Method == http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		if max < 0 {
			max = math.MaxInt64 - 1
		}
		if r.ContentLength > max {
			refuse(http.StatusRequestEntityTooLarge, tooLarge(max))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
		if status, bad := unreadable(err, max); bad != nil {
			refuse(status, bad)
			return
		}
		if err := reqtext.CheckJSON(body); err != nil {
			refuse(http.StatusBadRequest, models.Invalid("", "%s", err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// unreadable is the answer to a body that could not be read (nil when err
// is nil): too large, too slow (the server's read timeout), or cut off.
func unreadable(err error, max int64) (int, *models.Error) {
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, tooLarge(max)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusRequestTimeout, models.Invalid("", "the request body did not arrive within the read timeout")
	}
	return http.StatusBadRequest, models.Invalid("", "could not read the request body")
}

func tooLarge(max int64) *models.Error {
	return &models.Error{Kind: models.KindInvalid, Message: statusRequestEntityTooLargeLabel, MaxBytes: max}
}

// writeError answers outside GraphQL execution in the GraphQL error shape,
// the error coded by the presenter (and noted in the access log).
func writeError(w http.ResponseWriter, r *http.Request, presenter graphql.ErrorPresenterFunc, status int, err *models.Error) {
	e := presenter(r.Context(), err)
	if code, ok := e.Extensions["code"].(string); ok {
		noteCode(w, code)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(graphql.Response{Errors: gqlerror.List{e}})
}
