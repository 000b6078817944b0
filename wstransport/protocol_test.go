package wstransport_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/feed"
)

// protoRig is a server with a feed, and the client steps the protocol
// tests take.
type protoRig struct {
	*world
	ctx context.Context
	sub json.RawMessage // agent 1's feed
}

func newProtoRig(t *testing.T) *protoRig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	w := newWorldWith(t, func(e *env) api.Config { return api.Config{Feed: runFeed(t, ctx, e, feed.Options{})} })
	sub, _ := json.Marshal(map[string]any{"query": `subscription { agentDeploymentObjects { id } }`})
	return &protoRig{world: w, ctx: ctx, sub: sub}
}

// open dials with proto; with init, connection_init is acknowledged first.
func (r *protoRig) open(t *testing.T, proto string, init bool) *websocket.Conn {
	t.Helper()
	conn, _, err := r.dialWS(t, r.ctx, proto, nil)
	if err != nil {
		t.Fatal(err)
	}
	if init {
		if m, err := initWS(r.ctx, conn, r.agent1.key); err != nil || m.Type != "connection_ack" {
			t.Fatalf("init: %+v %v", m, err)
		}
	}
	return conn
}

func (r *protoRig) send(t *testing.T, conn *websocket.Conn, m wsMsg) {
	t.Helper()
	if err := wsjson.Write(r.ctx, conn, m); err != nil {
		t.Fatal(err)
	}
}

func (r *protoRig) wantClose(t *testing.T, conn *websocket.Conn, code websocket.StatusCode) {
	t.Helper()
	if got := readUntilClose(r.ctx, conn); got != code {
		t.Fatalf("closed with %d, want %d", got, code)
	}
}

// nextOf reads until a message of one of the types for id.
func (r *protoRig) nextOf(t *testing.T, conn *websocket.Conn, id string, types ...string) wsMsg {
	t.Helper()
	for {
		var m wsMsg
		if err := wsjson.Read(r.ctx, conn, &m); err != nil {
			t.Fatalf("waiting for %v of %q: %v", types, id, err)
		}
		for _, typ := range types {
			if m.ID == id && m.Type == typ {
				return m
			}
		}
	}
}

// errorCode is the code of an error message's only error ("" if m is
// something else).
func errorCode(m wsMsg) string {
	var errs []gqlError
	if m.Type != "error" || json.Unmarshal(m.Payload, &errs) != nil || len(errs) != 1 {
		return ""
	}
	code, _ := errs[0].Extensions["code"].(string)
	return code
}

// The protocol rules of graphql-transport-ws (the graphql-ws library's
// PROTOCOL.md) whose breach closes the connection, each broken once, from a
// connected client's side.
func TestWebsocketProtocolCloses(t *testing.T) {
	t.Parallel()
	r := newProtoRig(t)
	t.Run("subscribe before connection_init: 4401", func(t *testing.T) {
		conn := r.open(t, "graphql-transport-ws", false)
		r.send(t, conn, wsMsg{ID: "1", Type: "subscribe", Payload: r.sub})
		r.wantClose(t, conn, 4401)
	})
	t.Run("second connection_init: 4429", func(t *testing.T) {
		conn := r.open(t, "graphql-transport-ws", true)
		p, _ := json.Marshal(map[string]any{"Authorization": "Bearer " + r.agent1.key})
		r.send(t, conn, wsMsg{Type: "connection_init", Payload: p})
		r.wantClose(t, conn, 4429)
	})
	t.Run("an id already running: 4409", func(t *testing.T) {
		conn := r.open(t, "graphql-transport-ws", true)
		r.send(t, conn, wsMsg{ID: "a", Type: "subscribe", Payload: r.sub})
		r.nextOf(t, conn, "a", "next") // running: the desired state arrived
		r.send(t, conn, wsMsg{ID: "a", Type: "subscribe", Payload: r.sub})
		r.wantClose(t, conn, 4409)
	})
	t.Run("not JSON: 4400", func(t *testing.T) {
		conn := r.open(t, "graphql-transport-ws", true)
		if err := conn.Write(r.ctx, websocket.MessageText, []byte("{nope")); err != nil {
			t.Fatal(err)
		}
		r.wantClose(t, conn, 4400)
	})
	t.Run("unknown message type: 4400", func(t *testing.T) {
		conn := r.open(t, "graphql-transport-ws", true)
		r.send(t, conn, wsMsg{ID: "1", Type: "start", Payload: r.sub}) // legacy's, not this protocol's
		r.wantClose(t, conn, 4400)
	})
}

// What graphql-transport-ws answers: ping with pong, an operation with
// next then complete (or error, coded), and complete frees an id at once.
func TestWebsocketProtocolAnswers(t *testing.T) {
	t.Parallel()
	r := newProtoRig(t)
	t.Run("ping is answered with pong and its payload", func(t *testing.T) {
		conn := r.open(t, "graphql-transport-ws", true)
		r.send(t, conn, wsMsg{Type: "ping", Payload: json.RawMessage(`{"n":7}`)})
		if m := r.nextOf(t, conn, "", "pong"); string(m.Payload) != `{"n":7}` {
			t.Fatalf("pong payload %s", m.Payload)
		}
	})
	t.Run("complete stops a subscription; its id can be used again", func(t *testing.T) {
		conn := r.open(t, "graphql-transport-ws", true)
		r.send(t, conn, wsMsg{ID: "a", Type: "subscribe", Payload: r.sub})
		r.nextOf(t, conn, "a", "next")
		r.send(t, conn, wsMsg{ID: "a", Type: "complete"})
		// The server forgets "a" at once: the same id starts a new
		// subscription rather than closing the connection with 4409.
		r.send(t, conn, wsMsg{ID: "a", Type: "subscribe", Payload: r.sub})
		if m := r.nextOf(t, conn, "a", "next", "error"); m.Type != "next" {
			t.Fatalf("resubscribed: %s %s", m.Type, m.Payload)
		}
	})
	t.Run("a query over the socket: next then complete", func(t *testing.T) {
		conn := r.open(t, "graphql-transport-ws", true)
		q, _ := json.Marshal(map[string]any{"query": `{ viewer { role } }`})
		r.send(t, conn, wsMsg{ID: "q", Type: "subscribe", Payload: q})
		if m := r.nextOf(t, conn, "q", "next", "error"); m.Type != "next" || string(m.Payload) != `{"data":{"viewer":{"role":"AGENT"}}}` {
			t.Fatalf("answer: %s %s", m.Type, m.Payload)
		}
		r.nextOf(t, conn, "q", "complete")
	})
	t.Run("an invalid operation: error, with a code", func(t *testing.T) {
		conn := r.open(t, "graphql-transport-ws", true)
		q, _ := json.Marshal(map[string]any{"query": `subscription { noSuchField }`})
		r.send(t, conn, wsMsg{ID: "x", Type: "subscribe", Payload: q})
		if m := r.nextOf(t, conn, "x", "error", "next"); errorCode(m) != "GRAPHQL_VALIDATION_FAILED" {
			t.Fatalf("answer: %s %s", m.Type, m.Payload)
		}
	})
	t.Run("an operation payload that is not JSON: error, BAD_USER_INPUT", func(t *testing.T) {
		conn := r.open(t, "graphql-transport-ws", true)
		r.send(t, conn, wsMsg{ID: "j", Type: "subscribe", Payload: json.RawMessage(`"not an operation"`)})
		if m := r.nextOf(t, conn, "j", "error", "next"); errorCode(m) != "BAD_USER_INPUT" {
			t.Fatalf("answer: %s %s", m.Type, m.Payload)
		}
	})
}

// A connection runs at most 100 operations at once: one more is answered
// with an error (RATE_LIMITED, from the presenter, with retryAfter) and
// not started; once one ends, a new one starts.
func TestWebsocketOperationsCap(t *testing.T) {
	t.Parallel()
	r := newProtoRig(t)
	conn := r.open(t, "graphql-transport-ws", true)
	for i := range 100 {
		r.send(t, conn, wsMsg{ID: strconv.Itoa(i), Type: "subscribe", Payload: r.sub})
	}
	running := map[string]bool{} // each running: its desired state arrived
	for len(running) < 100 {
		var m wsMsg
		if err := wsjson.Read(r.ctx, conn, &m); err != nil {
			t.Fatalf("with %d running: %v", len(running), err)
		}
		if m.Type != "next" {
			t.Fatalf("got %s %s", m.Type, m.Payload)
		}
		running[m.ID] = true
	}
	r.send(t, conn, wsMsg{ID: "one-more", Type: "subscribe", Payload: r.sub})
	m := r.nextOf(t, conn, "one-more", "error", "next")
	var errs []gqlError
	_ = json.Unmarshal(m.Payload, &errs)
	if errorCode(m) != "RATE_LIMITED" || errs[0].Extensions["retryAfter"] != float64(1) {
		t.Fatalf("101st operation: %s %s", m.Type, m.Payload)
	}
	r.send(t, conn, wsMsg{ID: "0", Type: "complete"})
	r.send(t, conn, wsMsg{ID: "one-more", Type: "subscribe", Payload: r.sub})
	if m := r.nextOf(t, conn, "one-more", "error", "next"); m.Type != "next" {
		t.Fatalf("after one ended: %s %s", m.Type, m.Payload)
	}
}

// The legacy protocol's stop (answered with complete) and
// connection_terminate (a normal close).
func TestLegacyWebsocketProtocol(t *testing.T) {
	t.Parallel()
	r := newProtoRig(t)
	t.Run("stop is answered with complete", func(t *testing.T) {
		conn := r.open(t, "graphql-ws", true)
		r.send(t, conn, wsMsg{ID: "s", Type: "start", Payload: r.sub})
		r.nextOf(t, conn, "s", "data")
		r.send(t, conn, wsMsg{ID: "s", Type: "stop"})
		r.nextOf(t, conn, "s", "complete")
	})
	t.Run("connection_terminate closes normally", func(t *testing.T) {
		conn := r.open(t, "graphql-ws", true)
		r.send(t, conn, wsMsg{Type: "connection_terminate"})
		r.wantClose(t, conn, websocket.StatusNormalClosure)
	})
}
