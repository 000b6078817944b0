package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
)

// wsImplementation is the websocket implementation behind gqlgen's
// transport: coder/websocket, as gqlgen's own CoderWebsocketImplementation,
// but keeping the *websocket.Conn within reach of the session so that the
// central keep-alive (keepalive.go) can write its pings with a deadline, and
// so that a connection ended by its session closes with the session's code.
type wsImplementation struct {
	accept websocket.AcceptOptions
}

func (i wsImplementation) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	for k, vs := range opts.ResponseHeader {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	ao := i.accept
	ao.Subprotocols = slices.Clone(ao.Subprotocols)
	for _, p := range opts.Subprotocols {
		if !slices.Contains(ao.Subprotocols, p) {
			ao.Subprotocols = append(ao.Subprotocols, p)
		}
	}
	conn, err := websocket.Accept(smallBuffers{w}, r, &ao)
	if err != nil {
		return nil, err
	}
	c := &wsConn{conn: conn}
	if ws, ok := r.Context().Value(sessionKey{}).(*wsSession); ok {
		c.ws = ws
		ws.attach(c)
	}
	return c, nil
}

// wsConn adapts a *websocket.Conn to gqlgen's transport.WebsocketConn (and
// its optional read-limit and read-deadline interfaces).
type wsConn struct {
	conn *websocket.Conn
	ws   *wsSession // nil outside a session (not through the middleware)

	mu            sync.Mutex
	deadline      *time.Timer
	closing       bool
	closeComplete chan struct{}
}

var (
	_ transport.WebsocketConn          = (*wsConn)(nil)
	_ transport.WebsocketReadLimiter   = (*wsConn)(nil)
	_ transport.WebsocketReadDeadliner = (*wsConn)(nil)
)

func (c *wsConn) NextReader() (int, io.Reader, error) {
	typ, data, err := c.conn.Read(context.Background())
	if err != nil {
		switch websocket.CloseStatus(err) {
		case websocket.StatusNormalClosure, websocket.StatusNoStatusRcvd:
			return int(typ), nil, transport.ErrWebsocketClosed
		}
		return int(typ), nil, err
	}
	return int(typ), bytes.NewReader(data), nil
}

func (c *wsConn) WriteJSON(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	err = c.conn.Write(context.Background(), websocket.MessageText, data)
	if err == nil && c.ws != nil {
		c.ws.wrote()
	}
	return err
}

// writeRaw writes one text message with a deadline; a write that misses it
// closes the connection (coder/websocket's rule), which is what a keep-alive
// is for.
func (c *wsConn) writeRaw(msg []byte, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.conn.Write(ctx, websocket.MessageText, msg)
}

// WriteClose starts the close handshake in the background, as gqlgen's
// adapter does: coder/websocket waits up to 5 s for the peer's close frame,
// and the transport must not stall its teardown on it. A connection ended
// by its session (revoked, or shutdown) closes with the session's code
// rather than gqlgen's 1000.
func (c *wsConn) WriteClose(code int, reason string) error {
	if c.ws != nil {
		code, reason = c.ws.closeCode(code, reason)
	}
	c.stopDeadline()
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	done := make(chan struct{})
	c.closeComplete = done
	c.mu.Unlock()
	go func() {
		defer close(done)
		_ = c.conn.Close(websocket.StatusCode(code), reason)
	}()
	return nil
}

func (c *wsConn) Close() error {
	c.stopDeadline()
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return nil // the close handshake owns the connection
	}
	return c.conn.CloseNow()
}

func (c *wsConn) Subprotocol() string { return c.conn.Subprotocol() }

func (c *wsConn) SetReadLimit(limit int64) { c.conn.SetReadLimit(limit) }

func (c *wsConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	if c.deadline != nil {
		c.deadline.Stop()
		c.deadline = nil
	}
	var now bool
	if !t.IsZero() {
		if d := time.Until(t); d <= 0 {
			now = true
		} else {
			c.deadline = time.AfterFunc(d, func() { _ = c.conn.CloseNow() })
		}
	}
	c.mu.Unlock()
	if now {
		return c.conn.CloseNow()
	}
	return nil
}

func (c *wsConn) stopDeadline() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deadline != nil {
		c.deadline.Stop()
		c.deadline = nil
	}
}

// Buffer sizes of a websocket connection. net/http hands a hijacked
// connection over with its own 4 KiB reader and writer; once the handler
// has returned (shallowWebsocket.Do) these are garbage, and the connection
// keeps smaller ones: clients send small messages (connection_init,
// subscribe, pong), and a message larger than the write buffer costs one
// more write call, not a copy.
const (
	wsReadBuffer  = 512
	wsWriteBuffer = 2048
)

// smallBuffers is a ResponseWriter whose Hijack returns the connection with
// buffers of the sizes above, keeping any bytes net/http has already read.
type smallBuffers struct{ http.ResponseWriter }

func (s smallBuffers) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Bytes net/http has read past the request (the client's first frames)
	// are handed over in the new reader's buffer: coder/websocket takes what
	// is buffered there and reads the rest from conn.
	br := bufio.NewReaderSize(conn, wsReadBuffer)
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(b)), conn), max(n, wsReadBuffer))
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	if brw.Writer.Buffered() > 0 {
		if err := brw.Writer.Flush(); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, wsWriteBuffer)), nil
}
