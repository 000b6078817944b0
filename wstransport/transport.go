// Package wstransport serves GraphQL over websockets on gqlgen's executor:
// the graphql-transport-ws protocol of the graphql-ws library and the legacy
// subscriptions-transport-ws protocol (subprotocol "graphql-ws", also taken
// when a client names none). Sessions tracks the open connections by
// principal, for revocation (4401) and shutdown (1012).
//
// The transport is ours rather than gqlgen's because of what an idle
// subscription costs (issue 4: under 32 KiB each at 10,000). gqlgen's keeps
// three goroutines per connection with one subscription: the reader, one
// waiting for the connection's context to end, and one blocked on the
// subscription's channel. Here a connection has one goroutine, its reader:
//   - the connection's end is watched with context.AfterFunc;
//   - a subscription runs on a goroutine only while it has something to
//     send: its source hands the transport a Stream (stream.go), which wakes
//     the operation once for every value ready on its channel and once at
//     its end; one of a bounded set of drainers (drainers.go) sends what is
//     ready;
//   - the deep one-off work of a connection (authenticating connection_init
//     against the database, parsing, validating and starting an operation)
//     runs on short-lived goroutines too, so that the reader's stack stays
//     small (a goroutine's stack grows to its deepest call and is given
//     back only by halves).
//
// Errors a client sees in an error or next message go through the
// executor's error presenter (exec.DispatchError), the one place that
// writes extensions.code; close codes and reasons are the protocol's.
package wstransport

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/coder/websocket"

	"github.com/brokkr/brokkr/auth"
)

// Subprotocols.
const (
	protoTransportWS = "graphql-transport-ws"
	protoLegacyWS    = "graphql-ws"
)

// Close codes of graphql-transport-ws (also used for the legacy protocol,
// which has none of its own).
const (
	closeNormal          = 1000
	closeInternal        = 4500
	closeBadRequest      = 4400
	closeUnauthorized    = auth.CloseUnauthenticated // 4401
	closeInitTimeout     = 4408
	closeDuplicateID     = 4409
	closeTooManyInitReqs = 4429
)

// MaxOperations bounds the operations one connection runs at once (an
// agent needs two: its feed and its target changes): a client cannot make
// the server hold unbounded subscriptions on one socket. One more is
// answered with an error (RATE_LIMITED) and not started.
const MaxOperations = 100

// Config is what a Transport is made from.
type Config struct {
	// OriginPatterns are the host patterns whose web pages may open
	// websockets (coder/websocket's AcceptOptions); same-origin pages and
	// clients that send no Origin are always allowed.
	OriginPatterns []string
	// Init authenticates connection_init's payload: it returns the
	// connection's context, carrying the principal (auth.ForContext), or an
	// error of kind UNAUTHENTICATED (closed 4401; 4500 for another kind).
	Init func(ctx context.Context, payload map[string]any) (context.Context, error)
	// InitTimeout: a websocket that sends no connection_init within it is
	// closed (4408); 0: no limit.
	InitTimeout time.Duration
	// WriteTimeout bounds every write: a client that takes nothing for this
	// long (a stalled or malicious reader) is cut off, so a subscription's
	// sender never waits on it forever; it resumes with after. 0: none.
	WriteTimeout time.Duration
	// ReadLimit is a client message's limit in bytes; 0 or less: none.
	ReadLimit int64
	// Sessions registers every connection (required).
	Sessions *Sessions
	// Share returns the key under which a subscription's answers may be
	// shared with every other subscription of the same key: the answer to
	// one value is then encoded once per key, not once per subscription
	// (encodings.go). "" (or a nil Share): its own.
	Share  func(*graphql.OperationContext) string
	Logger *slog.Logger
}

// Transport is the gqlgen transport for websocket upgrades.
type Transport struct {
	cfg      Config
	streams  handover
	shared   encodings
	drainers drainers
}

var _ graphql.Transport = (*Transport)(nil)

// New returns a transport serving cfg.
func New(cfg Config) *Transport {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Transport{cfg: cfg}
}

// IsWebsocket tells a websocket upgrade from other requests, whatever other
// Upgrade header they carry.
func IsWebsocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// Supports takes websocket upgrades; other requests (another Upgrade too)
// go to the HTTP transports.
func (t *Transport) Supports(r *http.Request) bool { return IsWebsocket(r) }

// Do upgrades the request and serves the connection on its own goroutine:
// the HTTP handler returns at once, and with it net/http's connection
// goroutine and per-request state (the connection and its buffers live on
// with the websocket).
func (t *Transport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ws, ctx := t.cfg.Sessions.open(w, r)
	if ws == nil {
		return // shutting down: answered 503
	}
	sb := &smallBuffers{ResponseWriter: w}
	wc, err := websocket.Accept(sb, r, &websocket.AcceptOptions{
		Subprotocols:   []string{protoTransportWS, protoLegacyWS},
		OriginPatterns: t.cfg.OriginPatterns,
	})
	if err != nil {
		ws.end()
		return // Accept has answered (403 for a foreign origin, 400 for a bad upgrade)
	}
	if t.cfg.ReadLimit > 0 {
		wc.SetReadLimit(t.cfg.ReadLimit)
	} else {
		wc.SetReadLimit(-1) // no limit (coder/websocket's own default is 32 KiB)
	}
	c := &conn{conn: wc, net: sb.conn, br: sb.br, readAhead: sb.readAhead, ws: ws, t: t, exec: exec, ctx: ctx, legacy: wc.Subprotocol() != protoTransportWS}
	ws.attach(c)
	c.start()
}

// handover passes each subscription's Stream from the resolver that made it
// (Take) to the operation that dispatched it: subscription resolvers run
// within DispatchOperation, so the operation expects its stream before and
// collects it after. What is to run at the operation's end (OnEnd) is
// handed over the same way.
type handover struct {
	mu sync.Mutex
	m  map[*graphql.OperationContext]handed
}

// handed is what the dispatch of one operation handed over.
type handed struct {
	stream Stream
	ends   []func()
}

// Take hands the stream of the subscription the operation oc made to the
// operation; it is ignored when oc was not dispatched by this transport
// (its consumer then blocks on the channel, as gqlgen's transports do).
func (t *Transport) Take(oc *graphql.OperationContext, s Stream) {
	h := &t.streams
	h.mu.Lock()
	if d, ok := h.m[oc]; ok {
		d.stream = s
		h.m[oc] = d
	}
	h.mu.Unlock()
}

func (h *handover) expect(oc *graphql.OperationContext) {
	h.mu.Lock()
	if h.m == nil {
		h.m = map[*graphql.OperationContext]handed{}
	}
	h.m[oc] = handed{}
	h.mu.Unlock()
}

// collect returns what was handed over for oc and forgets oc.
func (h *handover) collect(oc *graphql.OperationContext) handed {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.m[oc]
	delete(h.m, oc)
	return d
}
