// Package e2e_test runs the agent feed end to end: real servers (api.New with
// a feed.Hub, in httptest) over real PostgreSQL, mutations over HTTP, and
// subscriptions over real websockets in both GraphQL websocket protocols.
package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
	"github.com/brokkr/brokkr/models"
)

const wait = 10 * time.Second

func logger() *slog.Logger {
	if os.Getenv("FEED_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// server is one brokkr replica: a hub and the API handler in httptest.
type server struct {
	url  string
	hub  *feed.Hub
	stop func()
}

func startServer(t testing.TB, db *dbtest.DB, opts feed.Options) *server {
	t.Helper()
	lg := logger()
	hub := feed.New(db.Bun, db.URL, lg, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hub.Run(ctx); err != nil {
			t.Errorf("hub.Run: %v", err)
		}
	}()
	h, err := api.New(api.Config{DB: db.Bun, Feed: hub, Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	var stopped atomic.Bool
	s := &server{url: srv.URL, hub: hub}
	s.stop = func() {
		if stopped.Swap(true) {
			return
		}
		cancel() // closes every subscription: clients see "complete"
		<-done
		srv.CloseClientConnections()
		srv.Close()
	}
	t.Cleanup(s.stop)
	hub.Channel() // started
	return s
}

// gql runs one query or mutation over HTTP and returns its data.
func gql(t testing.TB, s *server, key, query string, vars map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.url+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Data   map[string]any
		Errors []any
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Errors) > 0 {
		t.Fatalf("%s: %s (%v)", query, raw, err)
	}
	return r.Data
}

func str(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		mm, _ := v.(map[string]any)
		v = mm[p]
	}
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return fmt.Sprint(int64(x))
	}
	return fmt.Sprint(v)
}

// world: an admin, a generator with a stack, and agents.
type world struct {
	t      testing.TB
	db     *dbtest.DB
	s      *server // the server used for mutations
	admin  string
	genKey string
	genID  string
	n      atomic.Int64
}

func newWorld(t testing.TB, db *dbtest.DB, s *server) *world {
	t.Helper()
	key, _, err := models.EnsureAdminKey(context.Background(), db.Bun)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, db: db, s: s, admin: key}
	d := gql(t, s, key, `mutation { createGenerator(input: {name: "gen"}) { generator { id } apiKey } }`, nil)
	w.genID, w.genKey = str(d, "createGenerator", "generator", "id"), str(d, "createGenerator", "apiKey")
	return w
}

func (w *world) stack() string {
	d := gql(w.t, w.s, w.genKey, `mutation($n: String!) { createStack(input: {name: $n}) { id } }`, map[string]any{"n": fmt.Sprintf("stack-%d", w.n.Add(1))})
	return str(d, "createStack", "id")
}

type agent struct{ id, key string }

func (w *world) agent() agent {
	d := gql(w.t, w.s, w.admin, `mutation($n: String!) { createAgent(input: {name: $n, clusterName: "c"}) { agent { id } apiKey } }`, map[string]any{"n": fmt.Sprintf("agent-%d", w.n.Add(1))})
	a := agent{str(d, "createAgent", "agent", "id"), str(d, "createAgent", "apiKey")}
	gql(w.t, w.s, w.admin, `mutation($id: ID!) { updateAgent(id: $id, input: {status: ACTIVE}) { id } }`, map[string]any{"id": a.id})
	return a
}

func (w *world) target(a agent, stack string) {
	gql(w.t, w.s, w.genKey, `mutation($a: ID!, $s: ID!) { addAgentTarget(agentId: $a, stackId: $s) { id } }`, map[string]any{"a": a.id, "s": stack})
}

// object submits a deployment object through s and returns its sequence.
func (w *world) objectVia(s *server, stack string) int64 {
	d := gql(w.t, s, w.genKey, `mutation($s: ID!, $y: String!) { createDeploymentObject(input: {stackId: $s, yamlContent: $y}) { sequenceId } }`,
		map[string]any{"s": stack, "y": fmt.Sprintf("n: %d\n", w.n.Add(1))})
	var seq int64
	fmt.Sscan(str(d, "createDeploymentObject", "sequenceId"), &seq)
	return seq
}

func (w *world) object(stack string) int64 { return w.objectVia(w.s, stack) }

// ws is one websocket client speaking proto ("graphql-transport-ws" or the
// legacy "graphql-ws"). A reader goroutine turns frames into messages.
type ws struct {
	t      testing.TB
	conn   *websocket.Conn
	proto  string
	msgs   chan wsMsg
	closed chan websocket.StatusCode
}

type wsMsg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

const (
	transportWS = "graphql-transport-ws"
	legacyWS    = "graphql-ws"
)

func dial(t testing.TB, s *server, key, proto string) *ws {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	url := "ws" + strings.TrimPrefix(s.url, "http") + "/query"
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{proto}})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(1 << 20)
	c := &ws{t: t, conn: conn, proto: proto, msgs: make(chan wsMsg, 1024), closed: make(chan websocket.StatusCode, 1)}
	t.Cleanup(func() { conn.CloseNow() })
	p, _ := json.Marshal(map[string]any{"Authorization": "Bearer " + key})
	if err := wsjson.Write(ctx, conn, wsMsg{Type: "connection_init", Payload: p}); err != nil {
		t.Fatal(err)
	}
	var ack wsMsg
	if err := wsjson.Read(ctx, conn, &ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("connection_init: %+v %v", ack, err)
	}
	go c.read()
	return c
}

func (c *ws) read() {
	for {
		var m wsMsg
		if err := wsjson.Read(context.Background(), c.conn, &m); err != nil {
			c.closed <- websocket.CloseStatus(err)
			close(c.msgs)
			return
		}
		switch m.Type {
		case "ping":
			_ = wsjson.Write(context.Background(), c.conn, wsMsg{Type: "pong"})
			continue
		case "ka", "pong":
			continue
		}
		c.msgs <- m
	}
}

func (c *ws) subscribe(id, query string, vars map[string]any) {
	c.t.Helper()
	typ := "subscribe"
	if c.proto == legacyWS {
		typ = "start"
	}
	p, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err := wsjson.Write(context.Background(), c.conn, wsMsg{ID: id, Type: typ, Payload: p}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *ws) unsubscribe(id string) {
	typ := "complete"
	if c.proto == legacyWS {
		typ = "stop"
	}
	_ = wsjson.Write(context.Background(), c.conn, wsMsg{ID: id, Type: typ})
}

// next is the next message for id: ("next", payload data) or ("complete",
// nil) or ("error", nil); "closed" when the connection ended.
func (c *ws) next(id string, timeout time.Duration) (string, map[string]any) {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				return "closed", nil
			}
			if m.ID != id {
				continue
			}
			switch m.Type {
			case "next", "data":
				var r struct {
					Data   map[string]any
					Errors []any
				}
				_ = json.Unmarshal(m.Payload, &r)
				if len(r.Errors) > 0 {
					c.t.Logf("%s: errors %v", id, r.Errors)
					return "error", nil
				}
				return "next", r.Data
			default:
				return m.Type, nil
			}
		case <-deadline:
			c.t.Fatalf("no message for %s within %v", id, timeout)
		}
	}
}

const feedQuery = `subscription($after: Int64) { agentDeploymentObjects(after: $after) { sequenceId isDeletionMarker stack { id } } }`

func feedVars(after *int64) map[string]any {
	if after == nil {
		return nil
	}
	return map[string]any{"after": *after}
}

// seqs reads n feed objects for id.
func (c *ws) seqs(id string, n int) []int64 {
	c.t.Helper()
	var out []int64
	for len(out) < n {
		typ, d := c.next(id, wait)
		if typ != "next" {
			c.t.Fatalf("after %v: got %s, want an object", out, typ)
		}
		var seq int64
		fmt.Sscan(str(d, "agentDeploymentObjects", "sequenceId"), &seq)
		out = append(out, seq)
	}
	return out
}

// resumes subscribes id to the agent's feed after a sequence and checks
// the seam: exactly the missed objects, then the one newObject commits
// live, then nothing more (no duplicate).
func (c *ws) resumes(id string, after int64, missed []int64, newObject func() int64) {
	c.t.Helper()
	c.subscribe(id, feedQuery, feedVars(ptr(after)))
	equal(c.t, c.seqs(id, len(missed)), missed)
	live := newObject()
	equal(c.t, c.seqs(id, 1), []int64{live})
	c.quiet(id, 300*time.Millisecond)
}

// quiet asserts nothing arrives for id within d.
func (c *ws) quiet(id string, d time.Duration) {
	c.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				c.t.Fatal("connection closed")
			}
			if m.ID == id {
				c.t.Fatalf("unexpected %s %s", m.Type, m.Payload)
			}
		case <-deadline:
			return
		}
	}
}

func equal(t testing.TB, got, want []int64) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func ptr[T any](v T) *T { return &v }

// decode is a "next" message's data.
func decode(m wsMsg) map[string]any {
	var r struct{ Data map[string]any }
	_ = json.Unmarshal(m.Payload, &r)
	return r.Data
}
