package wstransport_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
	"github.com/brokkr/brokkr/models"
)

// The transport is tested where it serves: api.New's handler in httptest,
// over a real database, with real websocket clients.

// env is one running server on its own database.
type env struct {
	srv   *httptest.Server
	db    *dbtest.DB
	admin string // the admin key
	logs  lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// logText is what the server logged so far.
func (e *env) logText() string {
	e.logs.mu.Lock()
	defer e.logs.mu.Unlock()
	return e.logs.b.String()
}

// principal is an API identity made through the API.
type principal struct{ id, key string }

// world: generator A with stack A and two objects, ACTIVE agents 1
// (targets stack A) and 2 (no targets).
type world struct {
	*env
	genA           principal
	agent1, agent2 principal
	stackA         string
	objA1, objA2   string
}

func newWorld(t *testing.T, cfg api.Config) *world {
	t.Helper()
	return newWorldWith(t, func(*env) api.Config { return cfg })
}

// newWorldWith builds the world on a server whose configuration may depend
// on the database (a feed needs it); cfg's DB and Logger are filled in.
func newWorldWith(t *testing.T, mk func(*env) api.Config) *world {
	t.Helper()
	db := dbtest.New(t)
	key, created, err := models.EnsureAdminKey(context.Background(), db.Bun)
	if err != nil || !created {
		t.Fatalf("EnsureAdminKey: created=%v err=%v", created, err)
	}
	e := &env{db: db, admin: key}
	cfg := mk(e)
	cfg.DB = db.Bun
	cfg.Logger = slog.New(slog.NewTextHandler(&e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h, err := api.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)

	w := &world{env: e}
	d := w.ok(t, w.admin, `mutation { createGenerator(input: {name: "gen-a"}) { apiKey generator { id } } }`, nil)
	w.genA = principal{str(d, "createGenerator", "generator", "id"), str(d, "createGenerator", "apiKey")}
	w.agent1, w.agent2 = w.activeAgent(t, "agent-1"), w.activeAgent(t, "agent-2")
	d = w.ok(t, w.genA.key, `mutation { createStack(input: {name: "web"}) { id } }`, nil)
	w.stackA = str(d, "createStack", "id")
	w.objA1, w.objA2 = w.object(t, "v: 1\n"), w.object(t, "v: 2\n")
	w.ok(t, w.genA.key, `mutation($a: ID!, $s: ID!) { addAgentTarget(agentId: $a, stackId: $s) { id } }`,
		map[string]any{"a": w.agent1.id, "s": w.stackA})
	return w
}

func (w *world) activeAgent(t *testing.T, name string) principal {
	t.Helper()
	d := w.ok(t, w.admin, `mutation($n: String!) { createAgent(input: {name: $n, clusterName: "c"}) { apiKey agent { id } } }`, map[string]any{"n": name})
	p := principal{str(d, "createAgent", "agent", "id"), str(d, "createAgent", "apiKey")}
	w.ok(t, w.admin, `mutation($id: ID!) { updateAgent(id: $id, input: {status: ACTIVE}) { id } }`, map[string]any{"id": p.id})
	return p
}

// object submits a deployment object to stack A and returns its id.
func (w *world) object(t *testing.T, yaml string) string {
	t.Helper()
	d := w.ok(t, w.genA.key, `mutation($s: ID!, $y: String!) { createDeploymentObject(input: {stackId: $s, yamlContent: $y}) { id } }`,
		map[string]any{"s": w.stackA, "y": yaml})
	return str(d, "createDeploymentObject", "id")
}

// gqlError is one entry of a response's errors.
type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

// ok runs a request over HTTP that must succeed and returns its data.
func (e *env) ok(t *testing.T, key, query string, vars map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r struct {
		Data   map[string]any
		Errors []gqlError
	}
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Errors) > 0 || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s", query, resp.StatusCode, raw)
	}
	return r.Data
}

// str walks decoded JSON objects to a string.
func str(v any, path ...string) string {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	s, _ := v.(string)
	return s
}

type wsMsg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// dialWS opens a GraphQL websocket with the given subprotocol and headers.
func (e *env) dialWS(t *testing.T, ctx context.Context, proto string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/query"
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{proto}, HTTPHeader: header})
	if err == nil {
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

// initWS sends connection_init with key (none when empty) and returns the
// first answer, or the read error (a close).
func initWS(ctx context.Context, c *websocket.Conn, key string) (wsMsg, error) {
	payload := map[string]any{}
	if key != "" {
		payload["Authorization"] = "Bearer " + key
	}
	p, _ := json.Marshal(payload)
	if err := wsjson.Write(ctx, c, wsMsg{Type: "connection_init", Payload: p}); err != nil {
		return wsMsg{}, err
	}
	var m wsMsg
	err := wsjson.Read(ctx, c, &m)
	return m, err
}

// readUntilClose reads until the server closes and returns the close code.
func readUntilClose(ctx context.Context, c *websocket.Conn) websocket.StatusCode {
	for {
		var m wsMsg
		if err := wsjson.Read(ctx, c, &m); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// runFeed starts a feed hub over e's database for the test's duration.
func runFeed(t *testing.T, ctx context.Context, e *env, opts feed.Options) *feed.Hub {
	t.Helper()
	hub := feed.New(e.db.Bun, e.db.URL, nil, opts)
	done := make(chan struct{})
	runCtx, stop := context.WithCancel(ctx)
	go func() {
		defer close(done)
		_ = hub.Run(runCtx)
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
	hub.Channel() // started
	return hub
}
