package wstransport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/feed"
)

// The protocol rules of graphql-transport-ws (the graphql-ws library's
// PROTOCOL.md), each broken once, from a connected client's side, and the
// legacy protocol's stop and connection_terminate.
func TestWebsocketProtocolRules(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := newWorldWith(t, func(e *env) api.Config { return api.Config{Feed: runFeed(t, ctx, e, feed.Options{})} })
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

	// errorCode is the code of an error message's only error ("" if m is
	// something else).
	errorCode := func(m wsMsg) string {
		var errs []gqlError
		if m.Type != "error" || json.Unmarshal(m.Payload, &errs) != nil || len(errs) != 1 {
			return ""
		}
		code, _ := errs[0].Extensions["code"].(string)
		return code
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
		// The server forgets "a" at once: the same id starts a new
		// subscription rather than closing the connection with 4409.
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
		if m := nextOf(t, conn, "x", "error", "next"); errorCode(m) != "GRAPHQL_VALIDATION_FAILED" {
			t.Fatalf("answer: %s %s", m.Type, m.Payload)
		}
	})
	t.Run("at most 100 operations at once per connection", func(t *testing.T) {
		conn := open(t, "graphql-transport-ws", true)
		for i := range 100 {
			send(t, conn, wsMsg{ID: strconv.Itoa(i), Type: "subscribe", Payload: sub})
		}
		running := map[string]bool{} // each running: its desired state arrived
		for len(running) < 100 {
			var m wsMsg
			if err := wsjson.Read(ctx, conn, &m); err != nil {
				t.Fatalf("with %d running: %v", len(running), err)
			}
			if m.Type != "next" {
				t.Fatalf("got %s %s", m.Type, m.Payload)
			}
			running[m.ID] = true
		}
		send(t, conn, wsMsg{ID: "one-more", Type: "subscribe", Payload: sub})
		if m := nextOf(t, conn, "one-more", "error", "next"); errorCode(m) != "RATE_LIMITED" {
			t.Fatalf("101st operation: %s %s", m.Type, m.Payload)
		}
		send(t, conn, wsMsg{ID: "0", Type: "complete"})
		send(t, conn, wsMsg{ID: "one-more", Type: "subscribe", Payload: sub})
		if m := nextOf(t, conn, "one-more", "error", "next"); m.Type != "next" {
			t.Fatalf("after one ended: %s %s", m.Type, m.Payload)
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

// A client that stops reading does not hold up anyone: while it stalls,
// another subscriber of the same feed receives every object; the stalled
// one is cut off (its socket full, its feed buffer full, then its write
// deadline) and, resuming with after, gets exactly what it missed.
func TestStalledWebsocketClientIsCutOffAndResumes(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	w := newWorldWith(t, func(e *env) api.Config {
		hub := feed.New(e.db.Bun, e.db.URL, nil, feed.Options{BufferSize: 4})
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = hub.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-done })
		return api.Config{Feed: hub, WebsocketWriteTimeout: time.Second}
	})
	url := "ws" + strings.TrimPrefix(w.srv.URL, "http") + "/query"
	sub := func(after *int64) json.RawMessage {
		vars := map[string]any{}
		if after != nil {
			vars["after"] = *after
		}
		p, _ := json.Marshal(map[string]any{"query": `subscription($after: Int64) { agentDeploymentObjects(after: $after) { sequenceId yamlContent } }`, "variables": vars})
		return p
	}
	// subscribe opens a connection (a stalled one with a 4 KiB receive
	// buffer, so that little sits in the kernel) for agent 1's feed.
	subscribe := func(small bool, after *int64) *websocket.Conn {
		t.Helper()
		opts := &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}}
		if small {
			d := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
			}}
			opts.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
		}
		conn, _, err := websocket.Dial(ctx, url, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.CloseNow() })
		conn.SetReadLimit(1 << 20)
		if m, err := initWS(ctx, conn, w.agent1.key); err != nil || m.Type != "connection_ack" {
			t.Fatalf("init: %+v %v", m, err)
		}
		if err := wsjson.Write(ctx, conn, wsMsg{ID: "f", Type: "subscribe", Payload: sub(after)}); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	// read reads the next object's sequence id (end "") or how the
	// subscription ended: "complete", or "closed" (the connection).
	read := func(conn *websocket.Conn) (seq int64, end string) {
		for {
			var m struct {
				Type    string
				Payload struct {
					Data struct {
						AgentDeploymentObjects struct{ SequenceID json.Number }
					}
				}
			}
			if err := wsjson.Read(ctx, conn, &m); err != nil {
				return 0, "closed"
			}
			switch m.Type {
			case "next":
				n, _ := m.Payload.Data.AgentDeploymentObjects.SequenceID.Int64()
				return n, ""
			case "complete":
				return 0, "complete"
			}
		}
	}
	seqOf := func(conn *websocket.Conn) (int64, bool) {
		seq, end := read(conn)
		return seq, end == ""
	}

	stalled := subscribe(true, nil)
	first, ok := seqOf(stalled) // the desired state: A's latest object
	if !ok {
		t.Fatal("no desired state")
	}
	fast := subscribe(false, nil)
	if s, ok := seqOf(fast); !ok || s != first {
		t.Fatalf("fast subscriber's desired state %d, want %d", s, first)
	}

	// The fast subscriber reads all the time.
	fastGot := make(chan int64, 64)
	go func() {
		defer close(fastGot)
		for {
			s, ok := seqOf(fast)
			if !ok {
				return
			}
			fastGot <- s
		}
	}()

	// 40 objects of 256 KiB: ten MiB, far more than the stalled client's
	// socket buffers and feed buffer hold.
	const n = 40
	big := "k: " + strings.Repeat("x", 256<<10) + "\n"
	var want []int64
	for i := range n {
		d := w.ok(t, w.genA.key, `mutation($s: ID!, $y: String!) { createDeploymentObject(input: {stackId: $s, yamlContent: $y}) { sequenceId } }`,
			map[string]any{"s": w.stackA, "y": fmt.Sprintf("i: %d\n%s", i, big)})
		s, _ := strconv.ParseInt(fmt.Sprint(d["createDeploymentObject"].(map[string]any)["sequenceId"]), 10, 64)
		want = append(want, s)
	}
	for i, s := range want {
		got, ok := <-fastGot
		if !ok || got != s {
			t.Fatalf("fast subscriber's object %d: %d (%v), want %d", i, got, ok, s)
		}
	}

	// Past the write deadline, the stalled client reads what reached it:
	// a prefix of the objects, in order, then the end of its connection
	// (closed by the deadline, not a completed subscription waiting on a
	// write that never ends).
	time.Sleep(2 * time.Second)
	var got []int64
	end := ""
	for end == "" {
		var s int64
		if s, end = read(stalled); end == "" {
			got = append(got, s)
		}
	}
	if len(got) >= n {
		t.Fatalf("the stalled client was not cut off: it got all %d objects", len(got))
	}
	if end != "closed" {
		t.Fatalf("the stalled client's subscription ended with %s, want its connection closed by the write deadline", end)
	}
	for i, s := range got {
		if s != want[i] {
			t.Fatalf("stalled client's object %d: %d, want %d (got %v)", i, s, want[i], got)
		}
	}
	after := first
	if len(got) > 0 {
		after = got[len(got)-1]
	}
	t.Logf("stalled client got %d of %d objects before it was cut off", len(got), n)

	resumed := subscribe(false, &after)
	for _, s := range want[len(got):] {
		if r, ok := seqOf(resumed); !ok || r != s {
			t.Fatalf("resumed after %d: got %d (%v), want %d", after, r, ok, s)
		}
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
