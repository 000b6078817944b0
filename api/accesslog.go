package api

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
	"github.com/brokkr/brokkr/wstransport"
)

// The access log: one line per HTTP request ("http request": method, route,
// status, duration, bytes, remote address, principal, and for GraphQL the
// operation's name and type and the error codes of its answer), and one per
// websocket when it is accepted ("websocket open") and when it ends
// ("websocket close": close code and reason, who closed: server, client,
// or network for an end without a close frame; duration, principal), as
// wstransport.Sessions tells its Observer. The lines are at info level,
// except those of /healthz, /readyz and /metrics, which probes and scrapers
// call every few seconds: debug.

// accessLog writes the access log.
type accessLog struct {
	logger *slog.Logger
}

// quietRoutes are logged at debug level.
var quietRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

type accessKey struct{}

// access is what the log says of one HTTP request beyond what net/http
// knows: the route (instrument) and the GraphQL part (the observer
// extension, writeError).
type access struct {
	websocket bool // an upgrade: its operations are not this request's

	mu     sync.Mutex
	route  string
	scope  models.Scope
	authed bool
	opName string
	opType string
	codes  []string        // distinct, in order
	seen   map[string]bool // codes already in codes
}

// accessFor is the record of the HTTP request ctx belongs to (nil outside
// the handler).
func accessFor(ctx context.Context) *access {
	a, _ := ctx.Value(accessKey{}).(*access)
	return a
}

func (a *access) setRoute(route string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.route = route
	a.mu.Unlock()
}

// graphql notes the operation, who ran it and the codes of its errors.
func (a *access) graphql(scope models.Scope, authed bool, opName, opType string, codes []string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if authed {
		a.scope, a.authed = scope, true
	}
	if opName != "" {
		a.opName = opName
	}
	if opType != "" {
		a.opType = opType
	}
	for _, c := range codes {
		if !a.seen[c] {
			if a.seen == nil {
				a.seen = map[string]bool{}
			}
			a.seen[c] = true
			a.codes = append(a.codes, c)
		}
	}
}

// noteCode records the code of an error answered outside GraphQL
// execution (writeError) in the access record of the writer's request.
func noteCode(w http.ResponseWriter, code string) {
	for w != nil {
		if aw, ok := w.(*accessWriter); ok {
			aw.rec.graphql(models.Scope{}, false, "", "", []string{code})
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// accessWriter records the status and size of an answer.
type accessWriter struct {
	http.ResponseWriter
	rec    *access
	status int
	bytes  int64
}

func (w *accessWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *accessWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController (hijacking, flushing, deadlines)
// reach the underlying writer.
func (w *accessWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// middleware logs every request that next serves. A websocket upgrade
// that succeeds is logged by the websocket's own lines (websocketOpened and
// websocketClosed); a refused one gets an HTTP line.
func (l *accessLog) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		a := &access{websocket: wstransport.IsWebsocket(r)} // a websocket's operations do not write into its upgrade's record
		aw := &accessWriter{ResponseWriter: w, rec: a}
		next.ServeHTTP(aw, r.WithContext(context.WithValue(r.Context(), accessKey{}, a)))
		if aw.status == http.StatusSwitchingProtocols || (aw.status == 0 && wstransport.IsWebsocket(r)) {
			return // hijacked: the websocket lines tell the rest
		}
		if aw.status == 0 {
			aw.status = http.StatusOK
		}
		l.logHTTP(r, a, aw.status, time.Since(start), aw.bytes)
	})
}

func (l *accessLog) logHTTP(r *http.Request, a *access, status int, d time.Duration, n int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	level := slog.LevelInfo
	if quietRoutes[a.route] {
		level = slog.LevelDebug
	}
	if !l.logger.Enabled(r.Context(), level) {
		return
	}
	route := a.route
	if route == "" {
		route = "(none)" // no route matched: 404 or 405
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.Int("status", status),
		slog.Float64("duration_ms", millis(d)),
		slog.Int64("bytes", n),
		slog.String("remote", r.RemoteAddr),
	}
	attrs = append(attrs, principalAttrs(a.scope, a.authed)...)
	if a.opType != "" {
		attrs = append(attrs, slog.String("operation_type", a.opType))
	}
	if a.opName != "" {
		attrs = append(attrs, slog.String("operation_name", a.opName))
	}
	if len(a.codes) > 0 {
		attrs = append(attrs, slog.Any("error_codes", a.codes))
	}
	l.logger.LogAttrs(r.Context(), level, "http request", attrs...)
}

var _ wstransport.Observer = (*accessLog)(nil)

// Opened and Closed are the websockets' observer (Sessions.SetObserver).
func (l *accessLog) Opened(ws wstransport.Info) {
	attrs := []slog.Attr{
		slog.Uint64("websocket", ws.ID),
		slog.String("remote", ws.Remote),
		slog.String("subprotocol", ws.Subprotocol),
	}
	attrs = append(attrs, principalAttrs(ws.Scope, ws.Authed)...)
	l.logger.LogAttrs(context.Background(), slog.LevelInfo, "websocket open", attrs...)
}

func (l *accessLog) Closed(ws wstransport.Info) {
	attrs := []slog.Attr{
		slog.Uint64("websocket", ws.ID),
		slog.String("remote", ws.Remote),
		slog.Int("close_code", ws.Code),
		slog.String("closed_by", ws.ClosedBy),
		slog.Float64("duration_ms", millis(time.Since(ws.Opened))),
	}
	if ws.Reason != "" {
		attrs = append(attrs, slog.String("close_reason", ws.Reason))
	}
	attrs = append(attrs, principalAttrs(ws.Scope, ws.Authed)...)
	l.logger.LogAttrs(context.Background(), slog.LevelInfo, "websocket close", attrs...)
}

// principalAttrs says who is behind a key: principal admin, generator or
// agent (with principal_id), or anonymous.
func principalAttrs(scope models.Scope, authed bool) []slog.Attr {
	if !authed {
		return []slog.Attr{slog.String("principal", "anonymous")}
	}
	attrs := []slog.Attr{slog.String("principal", strings.ToLower(string(scope.Role)))}
	if id := principalID(scope); id != uuid.Nil {
		attrs = append(attrs, slog.String("principal_id", id.String()))
	}
	return attrs
}

// principalID is the id of a generator or an agent (uuid.Nil for the admin).
func principalID(scope models.Scope) uuid.UUID {
	switch scope.Role {
	case models.RoleGenerator:
		return scope.GeneratorID
	case models.RoleAgent:
		return scope.AgentID
	}
	return uuid.Nil
}

func millis(d time.Duration) float64 {
	return math.Round(float64(d.Microseconds())) / 1000
}
