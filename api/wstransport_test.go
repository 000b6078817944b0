package api_test

import (
	"context"
	"encoding/json"
	"runtime"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/brokkr/brokkr/api"
)

// The protocol rules of graphql-transport-ws (the graphql-ws library's
// PROTOCOL.md), each broken once, from a connected client's side, and the
// legacy protocol's stop and connection_terminate.
func TestWebsocketProtocolRules(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := newWorldWith(t, func(e *env) api.Config { return api.Config{Feed: runFeed(t, ctx, e)} })
	sub, _ := json.Marshal(map[string]any{"query": `subscription { agentDeploymentObjects { id } }`})

	open := func(t *testing.T, proto string, init bool) *websocket.Conn {
		t.Helper()
		conn, _, err := w.dialWS(t, ctx, proto, nil)
		if err != nil {
			t.Fatal(err)
		}
		if init {
			if m, err := initWS(ctx, conn, w.agent1.key); err != nil || m.Type != "connection_ack" {
				t.Fatalf("init: %+v %v", m, err)
			}
		}
		return conn
	}
	send := func(t *testing.T, conn *websocket.Conn, m wsMsg) {
		t.Helper()
		if err := wsjson.Write(ctx, conn, m); err != nil {
			t.Fatal(err)
		}
	}
	wantClose := func(t *testing.T, conn *websocket.Conn, code websocket.StatusCode) {
		t.Helper()
		if got := readUntilClose(ctx, conn); got != code {
			t.Fatalf("closed with %d, want %d", got, code)
		}
	}
	// nextOf reads until a message of one of the types for id.
	nextOf := func(t *testing.T, conn *websocket.Conn, id string, types ...string) wsMsg {
		t.Helper()
		for {
			var m wsMsg
			if err := wsjson.Read(ctx, conn, &m); err != nil {
				t.Fatalf("waiting for %v of %q: %v", types, id, err)
			}
			for _, typ := range types {
				if m.ID == id && m.Type == typ {
					return m
				}
			}
		}
	}

	t.Run("subscribe before connection_init: 4401", func(t *testing.T) {
		conn := open(t, "graphql-transport-ws", false)
		send(t, conn, wsMsg{ID: "1", Type: "subscribe", Payload: sub})
		wantClose(t, conn, 4401)
	})
	t.Run("second connection_init: 4429", func(t *testing.T) {
		conn := open(t, "graphql-transport-ws", true)
		p, _ := json.Marshal(map[string]any{"Authorization": "Bearer " + w.agent1.key})
		send(t, conn, wsMsg{Type: "connection_init", Payload: p})
		wantClose(t, conn, 4429)
	})
	t.Run("an id already running: 4409", func(t *testing.T) {
		conn := open(t, "graphql-transport-ws", true)
		send(t, conn, wsMsg{ID: "a", Type: "subscribe", Payload: sub})
		nextOf(t, conn, "a", "next") // running: the desired state arrived
		send(t, conn, wsMsg{ID: "a", Type: "subscribe", Payload: sub})
		wantClose(t, conn, 4409)
	})
	t.Run("not JSON: 4400", func(t *testing.T) {
		conn := open(t, "graphql-transport-ws", true)
		if err := conn.Write(ctx, websocket.MessageText, []byte("{nope")); err != nil {
			t.Fatal(err)
		}
		wantClose(t, conn, 4400)
	})
	t.Run("unknown message type: 4400", func(t *testing.T) {
		conn := open(t, "graphql-transport-ws", true)
		send(t, conn, wsMsg{ID: "1", Type: "start", Payload: sub}) // legacy's, not this protocol's
		wantClose(t, conn, 4400)
	})
	t.Run("ping is answered with pong and its payload", func(t *testing.T) {
		conn := open(t, "graphql-transport-ws", true)
		send(t, conn, wsMsg{Type: "ping", Payload: json.RawMessage(`{"n":7}`)})
		for {
			var m wsMsg
			if err := wsjson.Read(ctx, conn, &m); err != nil {
				t.Fatal(err)
			}
			if m.Type == "pong" {
				if string(m.Payload) != `{"n":7}` {
					t.Fatalf("pong payload %s", m.Payload)
				}
				return
			}
		}
	})
	t.Run("complete stops a subscription; its id can be used again", func(t *testing.T) {
		conn := open(t, "graphql-transport-ws", true)
		send(t, conn, wsMsg{ID: "a", Type: "subscribe", Payload: sub})
		nextOf(t, conn, "a", "next")
		send(t, conn, wsMsg{ID: "a", Type: "complete"})
		// The server forgets "a": the same id starts a new subscription
		// (after a short while: the stop is asynchronous) rather than
		// closing the connection with 4409.
		time.Sleep(200 * time.Millisecond)
		send(t, conn, wsMsg{ID: "a", Type: "subscribe", Payload: sub})
		if m := nextOf(t, conn, "a", "next", "error"); m.Type != "next" {
			t.Fatalf("resubscribed: %s %s", m.Type, m.Payload)
		}
	})
	t.Run("a query over the socket: next then complete", func(t *testing.T) {
		conn := open(t, "graphql-transport-ws", true)
		q, _ := json.Marshal(map[string]any{"query": `{ viewer { role } }`})
		send(t, conn, wsMsg{ID: "q", Type: "subscribe", Payload: q})
		if m := nextOf(t, conn, "q", "next", "error"); m.Type != "next" || string(m.Payload) != `{"data":{"viewer":{"role":"AGENT"}}}` {
			t.Fatalf("answer: %s %s", m.Type, m.Payload)
		}
		nextOf(t, conn, "q", "complete")
	})
	t.Run("an invalid operation: error, with a code", func(t *testing.T) {
		conn := open(t, "graphql-transport-ws", true)
		q, _ := json.Marshal(map[string]any{"query": `subscription { noSuchField }`})
		send(t, conn, wsMsg{ID: "x", Type: "subscribe", Payload: q})
		m := nextOf(t, conn, "x", "error", "next")
		var errs []gqlError
		if m.Type != "error" || json.Unmarshal(m.Payload, &errs) != nil || len(errs) == 0 || errs[0].Extensions["code"] == nil {
			t.Fatalf("answer: %s %s", m.Type, m.Payload)
		}
	})
	t.Run("legacy: stop is answered with complete", func(t *testing.T) {
		conn := open(t, "graphql-ws", true)
		send(t, conn, wsMsg{ID: "s", Type: "start", Payload: sub})
		nextOf(t, conn, "s", "data")
		send(t, conn, wsMsg{ID: "s", Type: "stop"})
		nextOf(t, conn, "s", "complete")
	})
	t.Run("legacy: connection_terminate closes normally", func(t *testing.T) {
		conn := open(t, "graphql-ws", true)
		send(t, conn, wsMsg{Type: "connection_terminate"})
		wantClose(t, conn, websocket.StatusNormalClosure)
	})
}

// An idle subscription owns no goroutine on the server: a connection is one
// goroutine (its reader); the subscription's goroutine exists only while it
// has something to send (issue 4's memory target rests on this). gqlgen's
// own transport kept three per connection.
func TestIdleSubscriptionOwnsNoGoroutine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := newWorldWith(t, func(e *env) api.Config { return api.Config{Feed: runFeed(t, ctx, e)} })
	sub, _ := json.Marshal(map[string]any{"query": `subscription { agentDeploymentObjects { id } }`})

	settle := func() int {
		// Short-lived goroutines (handshakes, replays) end within moments.
		n := runtime.NumGoroutine()
		for range 50 {
			time.Sleep(40 * time.Millisecond)
			m := runtime.NumGoroutine()
			if m == n {
				return m
			}
			n = m
		}
		return n
	}
	before := settle()
	const conns = 40
	for i := range conns {
		conn, _, err := w.dialWS(t, ctx, "graphql-transport-ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		if m, err := initWS(ctx, conn, w.agent1.key); err != nil || m.Type != "connection_ack" {
			t.Fatalf("init %d: %+v %v", i, m, err)
		}
		if err := wsjson.Write(ctx, conn, wsMsg{ID: "f", Type: "subscribe", Payload: sub}); err != nil {
			t.Fatal(err)
		}
		for { // the desired state: the subscription is live
			var m wsMsg
			if err := wsjson.Read(ctx, conn, &m); err != nil {
				t.Fatal(err)
			}
			if m.Type == "next" {
				break
			}
		}
	}
	// The client side (coder/websocket) runs no goroutine for a connection
	// nobody reads, so the growth is the server's.
	perConn := float64(settle()-before) / conns
	t.Logf("goroutines per idle subscribed connection: %.2f", perConn)
	if perConn > 1.1 {
		t.Fatalf("%.2f goroutines per idle subscribed connection, want 1 (its reader)", perConn)
	}
}
