package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/brokkr/brokkr/auth"
	"github.com/brokkr/brokkr/feed"
	"github.com/brokkr/brokkr/models"
)

// GraphQL over websockets (DESIGN §5), on gqlgen's executor: the
// graphql-transport-ws protocol of the graphql-ws library and the legacy
// subscriptions-transport-ws protocol (subprotocol "graphql-ws", also taken
// when a client names none).
//
// The transport is ours rather than gqlgen's because of what an idle
// subscription costs (issue 4: under 32 KiB each at 10,000). gqlgen's keeps
// three goroutines per connection with one subscription: the reader, one
// waiting for the connection's context to end, and one blocked on the
// subscription's channel. Here a connection has one goroutine, its reader:
//   - the connection's end is watched with context.AfterFunc;
//   - a subscription runs on a goroutine only while it has something to
//     send: the feed tells it through a feed.Waker when a value is ready on
//     its channel (or the channel closed), a short-lived goroutine sends what
//     is ready and ends;
//   - the deep one-off work of a connection (authenticating connection_init
//     against the database, parsing, validating and starting an operation)
//     runs on short-lived goroutines too, so that the reader's stack stays
//     small (a goroutine's stack grows to its deepest call and is given
//     back only by halves).

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

// maxOperations bounds the operations one connection runs at once (an
// agent needs two: its feed and its target changes): a client cannot make
// the server hold unbounded subscriptions on one socket. One more is
// answered with an error (RATE_LIMITED) and not started.
const maxOperations = 100

// wsTransport is the gqlgen transport for websocket upgrades on /query.
type wsTransport struct {
	accept      websocket.AcceptOptions
	init        func(ctx context.Context, payload map[string]any) (context.Context, error)
	initTimeout time.Duration
	// writeTimeout bounds every write: a client that takes nothing for this
	// long (a stalled or malicious reader) is cut off, so a subscription's
	// sender never waits on it forever; it resumes with after.
	writeTimeout time.Duration
	readLimit    int64 // Config.MaxBodyBytes: a client message's limit; 0 none
	logger       *slog.Logger
}

var _ graphql.Transport = (*wsTransport)(nil)

// Supports takes websocket upgrades; other requests (another Upgrade too)
// go to the HTTP transports.
func (t *wsTransport) Supports(r *http.Request) bool { return isWebsocket(r) }

// Do upgrades the request and serves the connection on its own goroutine:
// the HTTP handler returns at once, and with it net/http's connection
// goroutine and per-request state (the connection and its buffers live on
// with the websocket).
func (t *wsTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ws, ok := r.Context().Value(sessionKey{}).(*wsSession)
	if !ok { // api.New always puts the transport behind Sessions.middleware
		http.Error(w, "websocket outside a session", http.StatusInternalServerError)
		return
	}
	ao := t.accept
	ao.Subprotocols = []string{protoTransportWS, protoLegacyWS}
	conn, err := websocket.Accept(smallBuffers{w}, r, &ao)
	if err != nil {
		return // Accept has answered (403 for a foreign origin, 400 for a bad upgrade)
	}
	if t.readLimit > 0 {
		conn.SetReadLimit(t.readLimit)
	} else {
		conn.SetReadLimit(-1) // the body limit is off (coder/websocket's own default is 32 KiB)
	}
	c := &wsConn{
		conn:   conn,
		ws:     ws,
		t:      t,
		exec:   exec,
		ctx:    r.Context(),
		legacy: conn.Subprotocol() != protoTransportWS,
	}
	ws.attach(c)
	ws.detached.Store(true)
	if t.initTimeout > 0 {
		c.initTimer = time.AfterFunc(t.initTimeout, func() {
			c.mu.Lock()
			pending := !c.acked
			c.mu.Unlock()
			if pending {
				c.closeWith(closeInitTimeout, "connection initialisation timeout")
			}
		})
	}
	// The session's end (revoked key, shutdown) closes the connection with
	// the session's code.
	c.stopWatch = context.AfterFunc(c.ctx, func() {
		c.closeWith(ws.closeCode(closeNormal, "terminated"))
	})
	go c.read()
}

// wsConn is one websocket connection.
type wsConn struct {
	conn   *websocket.Conn
	ws     *wsSession
	t      *wsTransport
	exec   graphql.GraphExecutor
	ctx    context.Context // the session's: ends with the connection
	legacy bool            // subscriptions-transport-ws

	initTimer *time.Timer
	stopWatch func() bool

	mu      sync.Mutex
	initing bool            // connection_init received
	acked   bool            // connection_ack sent
	opCtx   context.Context // what connection_init produced: carries the caller's scope
	subs    map[string]*wsOp
	closing bool // the close handshake has started
}

// wsMessage is a message of either protocol.
type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// read is the connection's goroutine: it reads messages until the
// connection ends, then tears it down.
func (c *wsConn) read() {
	defer c.teardown()
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			if ce := (websocket.CloseError{}); errors.As(err, &ce) {
				c.ws.noteClose(int(ce.Code), ce.Reason, "client")
			} else {
				c.ws.noteClose(1006, "", "network") // no close frame
			}
			return
		}
		if err := checkJSONText(data); err != nil { // before encoding/json rewrites it (text.go)
			c.closeWith(closeBadRequest, "invalid message: "+err.Error())
			return
		}
		var m wsMessage
		if err := json.Unmarshal(data, &m); err != nil || m.Type == "" {
			c.closeWith(closeBadRequest, "invalid message: not a JSON object with a type")
			return
		}
		if !c.handle(&m) {
			return
		}
	}
}

// handle acts on one message; false ends the connection.
func (c *wsConn) handle(m *wsMessage) bool {
	switch m.Type {
	case "connection_init":
		return c.initialise(m.Payload)
	case "ping":
		if c.legacy {
			break
		}
		return c.writeMessage("pong", "", m.Payload) == nil
	case "pong":
		return true
	case "subscribe", "start":
		if (m.Type == "subscribe") == c.legacy {
			break
		}
		return c.start(m.ID, m.Payload)
	case "complete", "stop":
		if (m.Type == "complete") == c.legacy {
			break
		}
		c.stop(m.ID)
		return true
	case "connection_terminate":
		if !c.legacy {
			break
		}
		c.closeWith(closeNormal, "terminated")
		return false
	}
	c.closeWith(closeBadRequest, fmt.Sprintf("invalid message type %q", m.Type))
	return false
}

// initialise answers connection_init: it authenticates the payload and
// acknowledges, or closes the connection with 4401 (4500 when the key could
// not be checked; 1013 when the key has too many websockets open).
func (c *wsConn) initialise(payload json.RawMessage) bool {
	c.mu.Lock()
	again := c.initing
	c.initing = true
	c.mu.Unlock()
	if again {
		c.closeWith(closeTooManyInitReqs, "too many initialisation requests")
		return false
	}
	p := map[string]any{}
	if len(payload) > 0 && string(payload) != "null" {
		if err := json.Unmarshal(payload, &p); err != nil {
			c.closeWith(closeBadRequest, "invalid connection_init payload")
			return false
		}
	}
	var (
		ctx context.Context
		err error
	)
	onOwnStack(func() { ctx, err = c.t.init(c.ctx, p) }) // a database query
	if err != nil {
		code := closeUnauthorized
		if models.ErrorKind(err) != models.KindUnauthenticated {
			code = closeInternal
		}
		if c.legacy {
			_ = c.writeMessage("connection_error", "", mustJSON(map[string]string{"message": err.Error()}))
		}
		c.closeWith(code, err.Error())
		return false
	}
	if err := c.ws.admit(ctx); err != nil { // the per-key cap
		if c.legacy {
			_ = c.writeMessage("connection_error", "", mustJSON(map[string]string{"message": err.Error()}))
		}
		c.closeWith(CloseTooManyWebsockets, err.Error())
		return false
	}
	c.mu.Lock()
	c.opCtx = ctx
	c.mu.Unlock()
	if c.writeMessage("connection_ack", "", nil) != nil {
		return false
	}
	if c.legacy {
		_ = c.writeMessage("ka", "", nil)
	}
	c.mu.Lock()
	c.acked = true
	c.mu.Unlock()
	if c.initTimer != nil {
		c.initTimer.Stop()
	}
	c.ws.acknowledged()
	return true
}

// wsOp is one operation (subscription, or a query or mutation) of a
// connection.
type wsOp struct {
	c      *wsConn
	id     string
	cancel context.CancelFunc
	sendMu sync.Mutex // held while a result is written (see send)

	mu       sync.Mutex
	ctx      context.Context         // the operation's, once dispatched
	next     graphql.ResponseHandler // set once the operation waits for wake-ups
	ready    int                     // values (or the close) ready on the subscription's channel
	draining bool                    // a goroutine is sending
	done     bool
	stopped  bool // the client stopped it
}

// start registers the operation id and starts it on its own goroutine.
func (c *wsConn) start(id string, payload json.RawMessage) bool {
	c.mu.Lock()
	if !c.acked {
		c.mu.Unlock()
		c.closeWith(closeUnauthorized, "unauthorized: connection_init first")
		return false
	}
	if id == "" {
		c.mu.Unlock()
		c.closeWith(closeBadRequest, "invalid message: an operation needs an id")
		return false
	}
	if _, dup := c.subs[id]; dup {
		c.mu.Unlock()
		c.closeWith(closeDuplicateID, fmt.Sprintf("subscriber for %s already exists", id))
		return false
	}
	if len(c.subs) >= maxOperations {
		c.mu.Unlock()
		_ = c.writeMessage("error", id, mustJSON(gqlerror.List{{
			Message:    fmt.Sprintf("too many operations on one connection (at most %d at once)", maxOperations),
			Extensions: map[string]any{"code": string(models.KindRateLimited)},
		}}))
		return true
	}
	ctx, cancel := context.WithCancel(c.opCtx)
	op := &wsOp{c: c, id: id, cancel: cancel}
	if c.subs == nil {
		c.subs = map[string]*wsOp{}
	}
	c.subs[id] = op
	c.mu.Unlock()
	go op.run(ctx, payload)
	return true
}

// stop ends an operation at the client's request.
func (c *wsConn) stop(id string) {
	c.mu.Lock()
	op := c.subs[id]
	c.mu.Unlock()
	if op == nil {
		return
	}
	op.mu.Lock()
	op.stopped = true
	op.mu.Unlock()
	// The id is free again at once. subscriptions-transport-ws clients
	// wait for complete after stop; graphql-transport-ws ones do not.
	op.finish(c.legacy)
}

// run parses, validates and dispatches the operation. A subscription whose
// source wakes it (feed.Waker) then waits without a goroutine; anything
// else (queries, mutations, a failed subscription) is answered here.
func (op *wsOp) run(ctx context.Context, payload json.RawMessage) {
	c := op.c
	defer op.recover()
	start := graphql.Now()
	ctx = graphql.StartOperationTrace(ctx)
	var params graphql.RawParams
	if err := decodeJSON(payload, &params); err != nil {
		op.fail(gqlerror.List{{Message: "invalid JSON in the operation payload", Extensions: map[string]any{"code": string(models.KindInvalid)}}})
		return
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	rc, errs := c.exec.CreateOperationContext(ctx, &params)
	if errs != nil {
		resp := c.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		op.fail(resp.Errors)
		return
	}
	waker := feed.NewWaker(op.wake)
	ctx = feed.WithWaker(graphql.WithOperationContext(ctx, rc), waker)
	next, ctx := c.exec.DispatchOperation(ctx, rc)
	op.mu.Lock()
	op.ctx = ctx
	op.mu.Unlock()
	if rc.Operation == nil || rc.Operation.Operation != ast.Subscription || !waker.Attached() {
		for {
			resp := next(ctx)
			if resp == nil {
				break
			}
			if op.send(resp) != nil {
				return
			}
		}
		op.finish(true)
		return
	}
	op.mu.Lock()
	op.next = next
	go1 := op.ready > 0 && !op.draining && !op.done
	if go1 {
		op.draining = true
	}
	op.mu.Unlock()
	if go1 {
		op.drain()
	}
}

// wake is the subscription's feed.Waker: one more value (or the close of
// the channel) is ready. It must not block: the feed holds its lock.
func (op *wsOp) wake() {
	op.mu.Lock()
	op.ready++
	go1 := op.next != nil && !op.draining && !op.done
	if go1 {
		op.draining = true
	}
	op.mu.Unlock()
	if go1 {
		go op.drain()
	}
}

// drain sends what is ready, one response per ready value, then returns:
// the subscription owns no goroutine while it waits.
func (op *wsOp) drain() {
	defer op.recover()
	for {
		op.mu.Lock()
		if op.done || op.ready == 0 {
			op.draining = false
			op.mu.Unlock()
			return
		}
		op.ready--
		next, ctx := op.next, op.ctx
		op.mu.Unlock()
		resp := next(ctx) // does not block: a value, or the close, is ready
		if resp == nil {
			op.finish(true)
			return
		}
		if op.send(resp) != nil {
			op.finish(false)
			return
		}
	}
}

// send writes one result, next (data in the legacy protocol), unless the
// operation has ended: a result must not follow the end, where the client
// may already have reused the id for a new operation. end waits for a send
// in progress (sendMu).
func (op *wsOp) send(resp *graphql.Response) error {
	op.sendMu.Lock()
	defer op.sendMu.Unlock()
	op.mu.Lock()
	done := op.done
	op.mu.Unlock()
	if done {
		return nil
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	typ := "next"
	if op.c.legacy {
		typ = "data"
	}
	return op.c.writeMessage(typ, op.id, b)
}

// fail answers an operation that could not run (a parse or validation
// error, a panic) with an error message, and forgets it.
func (op *wsOp) fail(errs gqlerror.List) {
	if !op.end() {
		return
	}
	_ = op.c.writeMessage("error", op.id, mustJSON(errs))
	if op.c.legacy {
		_ = op.c.writeMessage("complete", op.id, nil)
	}
}

// finish ends the operation, telling the client (complete) unless the
// client stopped it or the connection is going.
func (op *wsOp) finish(tell bool) {
	if !op.end() {
		return
	}
	op.mu.Lock()
	stopped := op.stopped
	op.mu.Unlock()
	if tell && (!stopped || op.c.legacy) && op.c.ctx.Err() == nil { // not after a client's complete
		_ = op.c.writeMessage("complete", op.id, nil)
	}
}

// end marks the operation done and forgets it; false if it already was.
func (op *wsOp) end() bool {
	op.sendMu.Lock() // after a result being written, before any other
	op.mu.Lock()
	done := op.done
	op.done = true
	op.mu.Unlock()
	op.sendMu.Unlock()
	if done {
		return false
	}
	op.cancel()
	c := op.c
	c.mu.Lock()
	if c.subs[op.id] == op {
		delete(c.subs, op.id)
	}
	c.mu.Unlock()
	return true
}

// writeMessage writes one message: {"id":…,"type":…,"payload":…}.
func (c *wsConn) writeMessage(typ, id string, payload json.RawMessage) error {
	b := make([]byte, 0, 64+len(id)+len(payload))
	if id != "" {
		b = append(b, `{"id":`...)
		b = append(b, mustJSON(id)...)
		b = append(b, `,"type":"`...)
	} else {
		b = append(b, `{"type":"`...)
	}
	b = append(b, typ...)
	b = append(b, '"')
	if len(payload) > 0 {
		b = append(b, `,"payload":`...)
		b = append(b, payload...)
	}
	b = append(b, '}')
	return c.writeRaw(b, c.t.writeTimeout)
}

// writeRaw writes one text message with a deadline (none if timeout is 0);
// a write that misses it closes the connection (coder/websocket's rule).
func (c *wsConn) writeRaw(msg []byte, timeout time.Duration) error {
	if timeout <= 0 {
		return c.conn.Write(context.Background(), websocket.MessageText, msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := c.conn.Write(ctx, websocket.MessageText, msg)
	if err != nil && ctx.Err() != nil { // the access log's reason, unless the reader saw the end first
		c.ws.noteClose(1006, "write timeout: the client took no message for "+timeout.String(), "server")
	}
	return err
}

func (c *wsConn) Subprotocol() string { return c.conn.Subprotocol() }

// closeWith starts the close handshake (once) and ends every operation.
// The handshake runs in the background: coder/websocket waits up to 5 s for
// the peer's close frame.
func (c *wsConn) closeWith(code int, reason string) {
	c.ws.noteClose(code, reason, "server") // the access log keeps the first close
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.mu.Unlock()
	c.ws.end()             // the session is over: operations see their context end
	if len(reason) > 120 { // a close frame's reason is at most 123 bytes
		reason = reason[:120]
	}
	go func() { _ = c.conn.Close(websocket.StatusCode(code), reason) }()
}

// teardown runs when the reader ends: the connection is gone.
func (c *wsConn) teardown() {
	if c.initTimer != nil {
		c.initTimer.Stop()
	}
	c.stopWatch()
	c.ws.end()
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if !closing {
		_ = c.conn.CloseNow()
	}
}

// onOwnStack runs f on a new goroutine and waits for it; a panic in f is
// raised again on the caller's.
func onOwnStack(f func()) {
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		f()
	}()
	if p := <-done; p != nil {
		panic(p)
	}
}

// recover answers an operation whose own goroutine panicked outside the
// executor (which recovers resolvers' panics itself) with an internal
// error; the panic is logged, never shown.
func (op *wsOp) recover() {
	if r := recover(); r != nil {
		op.c.t.logger.Error("api: websocket operation panicked", "panic", r, "stack", string(debug.Stack()))
		op.fail(gqlerror.List{{Message: "internal error", Extensions: map[string]any{"code": string(models.KindInternal)}}})
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil { // plain data: cannot happen
		panic(err)
	}
	return b
}
