package wstransport

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/brokkr/brokkr/models"
	"github.com/brokkr/brokkr/reqtext"
)

// conn is one websocket connection.
type conn struct {
	conn *websocket.Conn
	net  net.Conn      // the hijacked connection under conn: its write deadline
	br   *bufio.Reader // conn's reader (awaitInput; guarded by mu once closing)
	// readAhead: the client's first bytes were read with the upgrade and
	// wait in br's source, where Buffered does not see them (the reader's).
	readAhead bool
	ws        *session
	t         *Transport
	exec      graphql.GraphExecutor
	ctx       context.Context // the session's: ends with the connection
	legacy    bool            // subscriptions-transport-ws

	initTimer *time.Timer
	writeMu   sync.Mutex // one write at a time under one deadline (writeRaw)

	mu      sync.Mutex
	initing bool            // connection_init received
	acked   bool            // connection_ack sent
	opCtx   context.Context // what connection_init produced: carries the caller's scope
	ops     []*op           // running (at most MaxOperations: a slice is smaller than a map)
	closing bool            // the close handshake has started
}

// message is a message of either protocol.
type message struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// start arms the init timeout and the session's end, and starts the reader.
func (c *conn) start() {
	if d := c.t.cfg.InitTimeout; d > 0 {
		c.initTimer = time.AfterFunc(d, func() {
			c.mu.Lock()
			pending := !c.acked
			c.mu.Unlock()
			if pending {
				c.closeWith(closeInitTimeout, "connection initialisation timeout")
			}
		})
	}
	if c.ctx.Err() != nil { // the session was closed before it had a connection
		if code, reason := c.ws.closeCode(); code != 0 {
			c.closeWith(code, reason)
		}
	}
	go c.read()
}

// read is the connection's goroutine while it waits for the client's next
// message: it reads and handles that message, then leaves the wait for the
// next one to a new goroutine, or tears the connection down when it ended.
// A goroutine's stack grows to its deepest call and shrinks at most to 4
// KiB once grown, so a goroutine that has handled a message (through
// coder/websocket, encoding/json and the handlers) would keep 4 KiB or
// more for every idle connection; a fresh one waiting (awaitInput) starts
// at the runtime's starting size, 2 KiB once most goroutines are such
// waits, and stays there. The cost is a goroutine per client message
// (connection_init, subscribe, a pong every keep-alive interval).
func (c *conn) read() {
	c.awaitInput()
	if !c.readOne() {
		c.teardown()
		return
	}
	go c.read()
}

// readOne reads and handles one message; false ends the connection.
func (c *conn) readOne() bool {
	_, data, err := c.conn.Read(context.Background())
	if err != nil {
		if ce := (websocket.CloseError{}); errors.As(err, &ce) {
			c.ws.noteClose(int(ce.Code), ce.Reason, ClosedByClient)
		} else {
			c.ws.noteClose(closeAbnormal, "", ClosedByNetwork) // no close frame
		}
		return false
	}
	if err := reqtext.CheckJSON(data); err != nil { // before encoding/json rewrites it
		c.closeWith(closeBadRequest, "invalid message: "+err.Error())
		return false
	}
	var m message
	if err := json.Unmarshal(data, &m); err != nil || m.Type == "" {
		c.closeWith(closeBadRequest, "invalid message: not a JSON object with a type")
		return false
	}
	return c.handle(&m)
}

// handle acts on one message; false ends the connection.
func (c *conn) handle(m *message) bool {
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
		return c.startOp(m.ID, m.Payload)
	case "complete", "stop":
		if (m.Type == "complete") == c.legacy {
			break
		}
		c.stopOp(m.ID)
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
func (c *conn) initialise(payload json.RawMessage) bool {
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
	onOwnStack(func() { ctx, err = c.t.cfg.Init(c.ctx, p) }) // a database query
	if err != nil {
		code := closeUnauthorized
		if models.ErrorKind(err) != models.KindUnauthenticated {
			code = closeInternal
		}
		return c.refuseInit(code, err)
	}
	if err := c.ws.admit(ctx); err != nil { // the per-key cap
		return c.refuseInit(CloseTooManyWebsockets, &models.Error{Kind: models.KindRateLimited, Message: err.Error(), RetryAfter: 1})
	}
	return c.acknowledge(ctx)
}

// refuseInit closes a connection whose connection_init was refused, telling
// a legacy client why first (connection_error). What the client reads is
// the presented error: its safe message, never a cause.
func (c *conn) refuseInit(code int, err error) bool {
	e := c.present(c.ctx, err)
	if c.legacy {
		_ = c.writeMessage("connection_error", "", mustJSON(e))
	}
	c.closeWith(code, e.Message)
	return false
}

// acknowledge sends connection_ack: ctx is what connection_init produced.
func (c *conn) acknowledge(ctx context.Context) bool {
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
		c.initTimer = nil // the reader's own field: nothing else reads it now
	}
	c.ws.acknowledged()
	return true
}

// present turns a domain error into what a client may read, through the
// executor's error presenter (the one place that writes extensions.code).
func (c *conn) present(ctx context.Context, err error) *gqlerror.Error {
	resp := c.exec.DispatchError(ctx, gqlerror.List{gqlerror.WrapIfUnwrapped(err)})
	if len(resp.Errors) == 0 { // cannot happen: DispatchError answers each error
		return &gqlerror.Error{Message: "internal error"}
	}
	return resp.Errors[0]
}

// messageBuffers are the buffers messages are built in before they are
// written: a message is copied into the connection's writer at once, so
// the buffer is free again after the write.
var messageBuffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledMessage is the largest buffer returned to messageBuffers.
const maxPooledMessage = 64 << 10

// writeMessage writes one message: {"id":…,"type":…,"payload":…}.
func (c *conn) writeMessage(typ, id string, payload json.RawMessage) error {
	bp := messageBuffers.Get().(*[]byte)
	b := (*bp)[:0]
	if id != "" {
		b = append(b, `{"id":`...)
		b = appendJSONString(b, id)
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
	err := c.writeRaw(b, c.t.cfg.WriteTimeout)
	if cap(b) <= maxPooledMessage {
		*bp = b
		messageBuffers.Put(bp)
	}
	return err
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			return append(b, mustJSON(s)...) // anything to escape: encoding/json's rules
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// writeRaw writes one text message within timeout (none if 0); a write that
// misses it closes the connection.
//
// The deadline is the socket's own (net.Conn.SetWriteDeadline), set around
// each write, rather than coder/websocket's per-write context deadline,
// which costs a context with a timer and an AfterFunc per message: 8% of
// the server's CPU at 10,000 subscribers (BenchmarkWebsocketServerSide,
// issue 9). A socket write that times out leaves coder/websocket's writer
// failed, as its own deadline closes the connection: both end here in
// CloseNow. Drop this for the context once coder/websocket times writes
// without a timer of their own.
func (c *conn) writeRaw(msg []byte, timeout time.Duration) error {
	c.writeMu.Lock()
	if timeout > 0 {
		_ = c.net.SetWriteDeadline(time.Now().Add(timeout))
	}
	err := c.conn.Write(context.Background(), websocket.MessageText, msg)
	if timeout > 0 {
		_ = c.net.SetWriteDeadline(time.Time{}) // the close handshake writes without it
	}
	c.writeMu.Unlock()
	if errors.Is(err, os.ErrDeadlineExceeded) { // the observer's reason, unless the reader saw the end first
		c.ws.noteClose(closeAbnormal, "write timeout: the client took no message for "+timeout.String(), ClosedByServer)
		_ = c.conn.CloseNow()
	}
	return err
}

// closeWith starts the close handshake (once) and ends every operation.
// The handshake runs in the background: coder/websocket waits up to 5 s for
// the peer's close frame.
func (c *conn) closeWith(code int, reason string) {
	c.ws.noteClose(code, reason, ClosedByServer) // the observer keeps the first close
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
func (c *conn) teardown() {
	if c.initTimer != nil {
		c.initTimer.Stop()
	}
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

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil { // plain data: cannot happen
		panic(err)
	}
	return b
}
