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
	"github.com/coder/websocket"
	"github.com/uptrace/bun"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/brokkr/brokkr/auth"
	"github.com/brokkr/brokkr/graph"
	"github.com/brokkr/brokkr/graph/scalar"
	"github.com/brokkr/brokkr/graphiql"
	"github.com/brokkr/brokkr/models"
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
	Feed   graph.Feed // nil: subscriptions answer an error
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
	Sessions *Sessions
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
		c.Sessions = NewSessions()
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
	cfg.Sessions.setObserver(access.websocketOpened, access.websocketClosed)

	authn := &auth.Authenticator{DB: cfg.DB, Logger: logger}
	presenter := graph.ErrorPresenter(logger)

	es := graph.NewExecutableSchema(graph.Config{
		Resolvers:  &graph.Resolver{DB: cfg.DB, Feed: cfg.Feed, Logger: logger},
		Directives: graph.DirectiveRoot{HasRole: graph.HasRole},
	})
	srv := handler.New(es)
	// First: it sees every answer, the other extensions' refusals included.
	srv.Use(observer{m: m})
	// Keep-alives come from one goroutine for all connections (keepalive.go),
	// not from gqlgen's ticker goroutine per connection.
	cfg.Sessions.SetKeepAlive(cfg.KeepAlive)
	cfg.Sessions.setRecheck(authn.Recheck)
	cfg.Sessions.setMaxPerKey(cfg.MaxWebsocketsPerKey)
	srv.AddTransport(&wsTransport{
		accept:       websocket.AcceptOptions{OriginPatterns: cfg.AllowedOrigins},
		init:         websocketInit(authn),
		initTimeout:  max(cfg.WebsocketInitTimeout, 0),
		writeTimeout: max(cfg.WebsocketWriteTimeout, 0),
		readLimit:    max(cfg.MaxBodyBytes, 0),
		logger:       logger,
	})
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
	srv.Use(graph.Guard{
		Auth:      authn,
		Limiter:   limiter,
		Activity:  &auth.Activity{DB: cfg.DB, Logger: logger},
		Presenter: presenter,
	})
	srv.Use(graph.LoaderExtension{DB: cfg.DB, RowBudget: cfg.RowBudget})

	mux := http.NewServeMux()
	mux.Handle("/query", m.instrument("/query", cors(cfg.AllowedOrigins, limitBody(cfg.MaxBodyBytes, cfg.Sessions.middleware(authn.Middleware(srv))))))
	ui := graphiql.New() // embedded: the page loads nothing from elsewhere
	mux.Handle("GET /{$}", m.instrument("/", ui.Page()))
	mux.Handle("GET "+graphiql.Prefix, m.instrument("/graphiql", ui.Assets()))
	mux.Handle("GET /healthz", m.instrument("/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})))
	mux.Handle("GET /readyz", m.instrument("/readyz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := cfg.DB.PingContext(ctx); err != nil {
			logger.WarnContext(ctx, "api: readiness check failed", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "database unreachable\n")
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})))
	mux.Handle("GET /metrics", m.instrument("/metrics", m.handler()))
	return access.middleware(mux), nil
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
// 400 (BAD_USER_INPUT) the same way (text.go).
func limitBody(max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			if err := checkQueryText(r.URL.RawQuery); err != nil {
				writeError(w, http.StatusBadRequest, err.Error(), models.KindInvalid, nil)
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
			tooLarge(w, max)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				tooLarge(w, max)
				return
			}
			if errors.Is(err, os.ErrDeadlineExceeded) { // the server's read timeout
				writeError(w, http.StatusRequestTimeout, "the request body did not arrive within the read timeout", models.KindInvalid, nil)
				return
			}
			writeError(w, http.StatusBadRequest, "could not read the request body", models.KindInvalid, nil)
			return
		}
		if err := checkJSONText(body); err != nil {
			writeError(w, http.StatusBadRequest, err.Error(), models.KindInvalid, nil)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

func tooLarge(w http.ResponseWriter, max int64) {
	writeError(w, http.StatusRequestEntityTooLarge, statusRequestEntityTooLargeLabel, models.KindInvalid, map[string]any{"maxBytes": max})
}

// writeError answers outside GraphQL execution in the GraphQL error shape.
func writeError(w http.ResponseWriter, status int, msg string, code models.Kind, ext map[string]any) {
	if ext == nil {
		ext = map[string]any{}
	}
	ext["code"] = string(code)
	noteCode(w, string(code))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(graphql.Response{Errors: gqlerror.List{{Message: msg, Extensions: ext}}})
}
