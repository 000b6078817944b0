package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/Khan/genqlient/graphql"
	"github.com/coder/websocket"
)

// The websocket adapter: genqlient's graphql.WebSocketClient on
// coder/websocket, speaking graphql-transport-ws (see the package
// documentation for why not genqlient's own client).
const (
	subprotocol = "graphql-transport-ws"
	// initTimeout bounds the wait for connection_ack.
	initTimeout = 10 * time.Second
	// writeTimeout bounds one write (the broker reads promptly).
	writeTimeout = 10 * time.Second
	// idleTimeout: the broker pings every 15 s, so a connection that brings
	// nothing for this long is dead (a half-open TCP connection, say).
	idleTimeout = 45 * time.Second
	// maxQueued is how many messages of one subscription may wait for
	// their consumer; one more and the connection is dropped (the agent
	// feed resumes with after: nothing is lost, memory stays bounded).
	maxQueued = 1024
	// maxMessage is the largest message read (the broker's own request
	// limit is 1 MiB by default; deployment objects can be larger).
	maxMessage = 64 << 20
)

// errSlowConsumer ends a connection whose subscriber did not keep up.
var errSlowConsumer = errors.New("subscription consumer too slow: dropped the connection to resume later")

// errIdle ends a connection that brought nothing for idleTimeout.
var errIdle = errors.New("no message from the broker for " + idleTimeout.String() + " (not even a keep-alive)")

// errClosed is a connection's end when the client closed it.
var errClosed = errors.New("websocket closed by the client")

// decodeError is a payload that the generated types could not decode:
// reconnecting would not help.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return "decoding a subscription payload: " + e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// WebSocket is one graphql-transport-ws connection to the broker, with the
// client's key in connection_init. It implements genqlient's
// graphql.WebSocketClient: Start it, pass it to generated subscription
// functions, and read each returned channel until it is closed (it is, once
// the subscription completes, fails, or the connection ends; Err then says
// why). Keep-alive pings are answered; a connection silent for 45 s is
// dropped. Use it directly for one connection's life; [Client.FollowAgentFeed]
// and [Client.FollowAgentEvents] reconnect.
type WebSocket struct {
	c    *Client
	conn *websocket.Conn

	mu     sync.Mutex
	subs   map[string]*wsSub
	nextID int
	err    error // why the connection ended; set before done closes
	done   chan struct{}
	errc   chan error // Start's channel: the end's error, once
	ended  bool
}

var _ graphql.WebSocketClient = (*WebSocket)(nil)

// WebSocket returns an unstarted connection.
func (c *Client) WebSocket() *WebSocket {
	return &WebSocket{c: c, subs: map[string]*wsSub{}, done: make(chan struct{}), errc: make(chan error, 1)}
}

type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// Start dials the broker, sends connection_init with the key and waits for
// connection_ack. A refusal is a *CloseError (4401: the key; 1013: too many
// websockets for it). The returned channel receives the connection's end
// once (nil after Close).
func (w *WebSocket) Start(ctx context.Context) (chan error, error) {
	dctx, cancel := context.WithTimeout(ctx, initTimeout)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, w.c.endpoint("ws"), &websocket.DialOptions{
		HTTPClient:   w.c.opts.HTTPClient,
		HTTPHeader:   map[string][]string{"User-Agent": {w.c.opts.UserAgent}},
		Subprotocols: []string{subprotocol},
	})
	if err != nil {
		return nil, fmt.Errorf("opening a websocket to %s: %w", w.c.endpoint("ws"), err)
	}
	if conn.Subprotocol() != subprotocol {
		conn.CloseNow()
		return nil, fmt.Errorf("the broker at %s does not speak %s", w.c.URL(), subprotocol)
	}
	conn.SetReadLimit(maxMessage)
	w.conn = conn
	if err := w.handshake(dctx); err != nil {
		conn.CloseNow()
		return nil, err
	}
	go w.read()
	return w.errc, nil
}

// handshake sends connection_init and reads until connection_ack.
func (w *WebSocket) handshake(ctx context.Context) error {
	payload := map[string]string{}
	if w.c.key != "" {
		payload["Authorization"] = "Bearer " + w.c.key
	}
	p, _ := json.Marshal(payload)
	if err := w.send(ctx, wsMessage{Type: "connection_init", Payload: p}); err != nil {
		return readError(err, ctx)
	}
	for {
		_, data, err := w.conn.Read(ctx)
		if err != nil {
			return readError(err, ctx)
		}
		var m wsMessage
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("invalid message from the broker: %w", err)
		}
		switch m.Type {
		case "connection_ack":
			return nil
		case "ping":
			if err := w.send(ctx, wsMessage{Type: "pong"}); err != nil {
				return readError(err, ctx)
			}
		}
	}
}

// readError turns a read's failure into a *CloseError when the peer
// closed, or says the wait timed out.
func readError(err error, ctx context.Context) error {
	if ce := closeErrorOf(err); ce != nil {
		return ce
	}
	if ctx.Err() != nil {
		return fmt.Errorf("websocket: %w", ctx.Err())
	}
	return &CloseError{Code: int(websocket.StatusAbnormalClosure), Reason: err.Error()}
}

func (w *WebSocket) send(ctx context.Context, m wsMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return w.conn.Write(ctx, websocket.MessageText, b)
}

// read is the connection's reader: it answers pings and queues each
// subscription's messages for its dispatcher, until the connection ends.
func (w *WebSocket) read() {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), idleTimeout)
		_, data, err := w.conn.Read(ctx)
		idle := ctx.Err() != nil
		cancel()
		if err != nil {
			if idle {
				err = errIdle
			} else {
				err = readError(err, context.Background())
			}
			w.end(err)
			return
		}
		var m wsMessage
		if err := json.Unmarshal(data, &m); err != nil {
			w.end(fmt.Errorf("invalid message from the broker: %w", err))
			return
		}
		switch m.Type {
		case "ping":
			if err := w.send(context.Background(), wsMessage{Type: "pong", Payload: m.Payload}); err != nil {
				w.end(readError(err, context.Background()))
				return
			}
		case "next", "error", "complete":
			w.deliver(m)
		}
	}
}

// deliver queues m for its subscription's dispatcher.
func (w *WebSocket) deliver(m wsMessage) {
	w.mu.Lock()
	s := w.subs[m.ID]
	if s != nil && m.Type != "next" {
		delete(w.subs, m.ID) // ended by the broker
	}
	w.mu.Unlock()
	if s == nil {
		return // unsubscribed meanwhile
	}
	select {
	case s.queue <- m:
	default:
		w.end(errSlowConsumer)
	}
}

// end records why the connection ended (the first reason wins), stops
// every subscription and closes the connection.
func (w *WebSocket) end(err error) {
	w.mu.Lock()
	if w.ended {
		w.mu.Unlock()
		return
	}
	w.ended = true
	w.err = err
	subs := w.subs
	w.subs = map[string]*wsSub{}
	if err != errClosed {
		w.errc <- err // buffered: the one send
	}
	close(w.done)
	w.mu.Unlock()
	for _, s := range subs {
		s.halt()
	}
	if w.conn != nil {
		if err == errClosed {
			_ = w.conn.Close(websocket.StatusNormalClosure, "")
		} else {
			_ = w.conn.Close(websocket.StatusGoingAway, "client leaving")
		}
	}
}

// Done is closed when the connection has ended.
func (w *WebSocket) Done() <-chan struct{} { return w.done }

// Err is why the connection ended (nil while it is open): a *CloseError
// when the broker or the network closed it.
func (w *WebSocket) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ended || w.err == errClosed {
		return nil
	}
	return w.err
}

// Close ends the connection and every subscription on it, closes the
// channel Start returned.
func (w *WebSocket) Close() error {
	w.end(errClosed)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.errc != nil {
		close(w.errc)
		w.errc = nil
	}
	return nil
}

// Subscribe starts a subscription; the generated functions call it.
func (w *WebSocket) Subscribe(req *graphql.Request, interfaceChan any, forward graphql.ForwardDataFunction) (string, error) {
	payload, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	w.mu.Lock()
	if w.ended || w.conn == nil {
		w.mu.Unlock()
		return "", errors.New("subscribe on a websocket that is not open")
	}
	w.nextID++
	s := &wsSub{w: w, id: strconv.Itoa(w.nextID), op: req.OpName, ch: interfaceChan, forward: forward,
		queue: make(chan wsMessage, maxQueued), stop: make(chan struct{})}
	w.subs[s.id] = s
	w.mu.Unlock()
	go s.dispatch()
	if err := w.send(context.Background(), wsMessage{ID: s.id, Type: "subscribe", Payload: payload}); err != nil {
		w.end(readError(err, context.Background()))
		return "", w.Err()
	}
	return s.id, nil
}

// Unsubscribe stops a subscription (its channel is closed).
func (w *WebSocket) Unsubscribe(id string) error {
	w.mu.Lock()
	s := w.subs[id]
	delete(w.subs, id)
	ended := w.ended
	w.mu.Unlock()
	if s == nil {
		return fmt.Errorf("no subscription %q", id)
	}
	s.halt()
	if ended {
		return nil
	}
	return w.send(context.Background(), wsMessage{ID: id, Type: "complete"})
}

// wsSub is one subscription: its dispatcher hands the queued messages to
// the generated forward function (which sends on the subscriber's channel,
// waiting for it) and closes the channel at the end.
type wsSub struct {
	w        *WebSocket
	id, op   string
	ch       any
	forward  graphql.ForwardDataFunction
	queue    chan wsMessage
	stop     chan struct{}
	stopOnce sync.Once
}

func (s *wsSub) halt() { s.stopOnce.Do(func() { close(s.stop) }) }

func (s *wsSub) dispatch() {
	// The generated channels are typed (chan XxxWsResponse): only reflect
	// can close one given as any, as genqlient's own client does.
	defer reflect.ValueOf(s.ch).Close()
	for {
		select {
		case <-s.stop:
			return
		case m := <-s.queue:
			switch m.Type {
			case "complete":
				return
			case "error":
				// The payload is a list of errors; the forward function
				// decodes a response, so it gets one with only errors.
				p, _ := json.Marshal(map[string]json.RawMessage{"errors": m.Payload})
				_ = s.forward(s.ch, p)
				return
			}
			if err := s.forward(s.ch, m.Payload); err != nil {
				s.w.end(&decodeError{err})
				return
			}
		}
	}
}
