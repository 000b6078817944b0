package wstransport_test

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/feed"
)

// A websocket that does not send connection_init in time is closed with
// 4408, and one that does is not.
func TestWebsocketInitTimeout(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := newWorld(t, api.Config{WebsocketInitTimeout: 300 * time.Millisecond})
	silent, _, err := w.dialWS(t, ctx, "graphql-transport-ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	prompt, _, err := w.dialWS(t, ctx, "graphql-transport-ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := initWS(ctx, prompt, w.agent1.key); err != nil || m.Type != "connection_ack" {
		t.Fatalf("init: %+v %v", m, err)
	}
	start := time.Now()
	if code := readUntilClose(ctx, silent); code != 4408 {
		t.Fatalf("silent connection closed with %d, want 4408", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("closed after %v", d)
	}
	time.Sleep(400 * time.Millisecond) // past the timeout: the initialised one still works
	q, _ := json.Marshal(map[string]any{"query": `{ viewer { role } }`})
	if err := wsjson.Write(ctx, prompt, wsMsg{ID: "q", Type: "subscribe", Payload: q}); err != nil {
		t.Fatal(err)
	}
	var m wsMsg
	if err := wsjson.Read(ctx, prompt, &m); err != nil || m.Type != "next" {
		t.Fatalf("after the timeout: %+v %v", m, err)
	}
}

// An idle subscription owns no goroutine on the server: a connection is one
// goroutine (its reader); the subscription's goroutine exists only while it
// has something to send (issue 4's memory target rests on this). gqlgen's
// own transport kept three per connection.
func TestIdleSubscriptionOwnsNoGoroutine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// 40 connections of one key: past the per-key cap, which is not what this measures.
	w := newWorldWith(t, func(e *env) api.Config {
		return api.Config{Feed: runFeed(t, ctx, e, feed.Options{}), MaxWebsocketsPerKey: -1}
	})
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

// A websocket message larger than the body limit ends the connection (1009,
// message too big); one within it is served.
func TestWebsocketMessageLimit(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := newWorld(t, api.Config{MaxBodyBytes: 4096})
	conn, _, err := w.dialWS(t, ctx, "graphql-transport-ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := initWS(ctx, conn, w.agent1.key); err != nil || m.Type != "connection_ack" {
		t.Fatalf("init: %+v %v", m, err)
	}
	small, _ := json.Marshal(map[string]any{"query": `{ viewer { role } }`, "variables": map[string]any{"pad": strings.Repeat("x", 3000)}})
	if err := wsjson.Write(ctx, conn, wsMsg{ID: "s", Type: "subscribe", Payload: small}); err != nil {
		t.Fatal(err)
	}
	var m wsMsg
	if err := wsjson.Read(ctx, conn, &m); err != nil || m.Type != "next" {
		t.Fatalf("within the limit: %+v %v", m, err)
	}
	big, _ := json.Marshal(map[string]any{"query": `{ viewer { role } }`, "variables": map[string]any{"pad": strings.Repeat("x", 5000)}})
	if err := wsjson.Write(ctx, conn, wsMsg{ID: "b", Type: "subscribe", Payload: big}); err != nil {
		t.Fatal(err)
	}
	if code := readUntilClose(ctx, conn); code != websocket.StatusMessageTooBig {
		t.Fatalf("over the limit: closed with %d, want %d", code, websocket.StatusMessageTooBig)
	}
}
