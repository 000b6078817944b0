package wstransport

import (
	"context"
	"encoding/json"
	"fmt"
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
	conn   *websocket.Conn
	ws     *session
	t      *Transport
	exec   graphql.GraphExecutor
	ctx    context.Context // the session's: ends with the connection
	legacy bool            // subscriptions-transport-ws

	initTimer *time.Timer
	stopWatch func() bool

	mu      sync.Mutex
	initing bool            // connection_init received
	acked   bool            // connection_ack sent
	opCtx   context.Context // what connection_init produced: carries the caller's scope
	ops     map[string]*op
	closing bool // the close handshake has started
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
	// The session's end (revoked key, shutdown) closes the connection with
	// the session's code.
	c.stopWatch = context.AfterFunc(c.ctx, func() {
		c.closeWith(c.ws.closeCode(closeNormal, "terminated"))
	})
	go c.read()
}

// read is the connection's goroutine: it reads messages until the
// connection ends, then tears it down.
func (c *conn) read() {
	defer c.teardown()
	for {
		_, data, err := c.conn.Read(context.Background())
		if err != nil {
			return
		}
		if err := reqtext.CheckJSON(data); err != nil { // before encoding/json rewrites it
			c.closeWith(closeBadRequest, "invalid message: "+err.Error())
			return
		}
		var m message
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

// writeRaw writes one text message with a deadline (none if timeout is 0);
// a write that misses it closes the connection (coder/websocket's rule).
func (c *conn) writeRaw(msg []byte, timeout time.Duration) error {
	if timeout <= 0 {
		return c.conn.Write(context.Background(), websocket.MessageText, msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.conn.Write(ctx, websocket.MessageText, msg)
}

// closeWith starts the close handshake (once) and ends every operation.
// The handshake runs in the background: coder/websocket waits up to 5 s for
// the peer's close frame.
func (c *conn) closeWith(code int, reason string) {
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

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil { // plain data: cannot happen
		panic(err)
	}
	return b
}
