// Package brokertest runs a real broker for the tests of its clients (the Go
// client, the CLI, the agent): api.New with a feed.Hub over a fresh,
// migrated PostgreSQL database (dbtest), served by httptest on a loopback
// address that it keeps, so that a test can stop the broker and start it
// again in place; and the brokkr binary, built once per test binary.
package brokertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
	"github.com/brokkr/brokkr/models"
	"github.com/brokkr/brokkr/wstransport"
)

// Broker is one running broker on its own database.
type Broker struct {
	DB       *dbtest.DB
	URL      string // http://127.0.0.1:PORT, the same across restarts
	AdminKey string

	t      testing.TB
	addr   string
	logger *slog.Logger
	tune   func(*api.Config)

	mu  sync.Mutex
	cur *instance // nil while stopped
}

// instance is one life of the broker: its hub and its HTTP server.
type instance struct {
	srv      *httptest.Server
	sessions *wstransport.Sessions
	cancel   context.CancelFunc
	hubDone  chan struct{}
}

// Start starts a broker on a fresh database; it is stopped at the end of
// the test. BROKERTEST_LOG=1 shows its log.
func Start(t testing.TB) *Broker {
	t.Helper()
	return StartWith(t, nil)
}

// StartWith is Start with tune changing the handler's configuration (its
// DB, Feed, Logger and Sessions are set already).
func StartWith(t testing.TB, tune func(*api.Config)) *Broker {
	t.Helper()
	db := dbtest.New(t)
	key, _, err := models.EnsureAdminKey(context.Background(), db.Bun)
	if err != nil {
		t.Fatal(err)
	}
	lg := slog.New(slog.DiscardHandler)
	if os.Getenv("BROKERTEST_LOG") != "" {
		lg = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b := &Broker{DB: db, AdminKey: key, t: t, logger: lg, addr: "127.0.0.1:0", tune: tune}
	b.start()
	t.Cleanup(b.Stop)
	return b
}

func (b *Broker) start() {
	b.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sessions := wstransport.NewSessions()
	hub := feed.New(b.DB.Bun, b.DB.URL, b.logger, feed.Options{OnRevoke: sessions.Revoke, OnPrincipalChange: sessions.Recheck, OnListening: sessions.RecheckAll})
	in := &instance{sessions: sessions, cancel: cancel, hubDone: make(chan struct{})}
	go func() {
		defer close(in.hubDone)
		if err := hub.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			b.t.Errorf("brokertest: feed hub: %v", err)
		}
	}()
	cfg := api.Config{DB: b.DB.Bun, Feed: hub, Logger: b.logger, Sessions: sessions}
	if b.tune != nil {
		b.tune(&cfg)
	}
	h, err := api.New(cfg)
	if err != nil {
		cancel()
		b.t.Fatal(err)
	}
	ln, err := listen(b.addr)
	if err != nil {
		cancel()
		b.t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	in.srv = httptest.NewUnstartedServer(h)
	in.srv.Listener = ln
	in.srv.Start()
	hub.Channel() // the hub has started
	b.mu.Lock()
	b.URL, b.cur = in.srv.URL, in
	b.mu.Unlock()
}

// listen listens on addr, waiting a little for a port just given up.
func listen(addr string) (net.Listener, error) {
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, err
}

// Stop shuts the broker down as SIGTERM does: websockets are closed with
// 1012 (service restart), then the server and the hub stop. Stopping a
// stopped broker does nothing.
func (b *Broker) Stop() {
	b.mu.Lock()
	in := b.cur
	b.cur = nil
	b.mu.Unlock()
	if in == nil {
		return
	}
	in.sessions.CloseAll()
	in.srv.CloseClientConnections()
	in.srv.Close()
	in.cancel()
	<-in.hubDone
}

// Restart stops the broker and starts it again on the same address and
// database.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	b.start()
}

// Result is one GraphQL answer.
type Result struct {
	Data   map[string]any
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	}
	Raw string
}

// Do sends one query or mutation with key over HTTP.
func (b *Broker) Do(t testing.TB, key, query string, vars map[string]any) *Result {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, b.URL+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := &Result{Raw: string(raw)}
	if err := json.Unmarshal(raw, r); err != nil {
		t.Fatalf("brokertest: decoding %s: %v", raw, err)
	}
	return r
}

// GQL is Do that fails the test on any error and returns the data.
func (b *Broker) GQL(t testing.TB, key, query string, vars map[string]any) map[string]any {
	t.Helper()
	r := b.Do(t, key, query, vars)
	if len(r.Errors) > 0 {
		t.Fatalf("brokertest: %s: %s", query, r.Raw)
	}
	return r.Data
}

// Dig follows a path of keys and indexes through decoded JSON.
func Dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// Str is Dig as a string (numbers in decimal).
func Str(v any, path ...any) string {
	switch x := Dig(v, path...).(type) {
	case string:
		return x
	case float64:
		return fmt.Sprint(int64(x))
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary is the brokkr binary, built (with the race detector) once per test
// binary into a temporary directory.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "brokkr-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "brokkr")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, "github.com/brokkr/brokkr").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// NewGenerator creates a generator (as the admin) and returns its id and key.
func (b *Broker) NewGenerator(t testing.TB, name string) (id, key string) {
	t.Helper()
	d := b.GQL(t, b.AdminKey, `mutation($n: String!) { createGenerator(input: {name: $n}) { apiKey generator { id } } }`, map[string]any{"n": name})
	return Str(d, "createGenerator", "generator", "id"), Str(d, "createGenerator", "apiKey")
}

// NewAgent creates an agent (as the admin), ACTIVE if active, and returns
// its id and key.
func (b *Broker) NewAgent(t testing.TB, name, cluster string, active bool) (id, key string) {
	t.Helper()
	d := b.GQL(t, b.AdminKey, `mutation($n: String!, $c: String!) { createAgent(input: {name: $n, clusterName: $c}) { apiKey agent { id } } }`,
		map[string]any{"n": name, "c": cluster})
	id, key = Str(d, "createAgent", "agent", "id"), Str(d, "createAgent", "apiKey")
	if active {
		b.SetAgentStatus(t, id, "ACTIVE")
	}
	return id, key
}

// SetAgentStatus sets an agent ACTIVE or INACTIVE (as the admin).
func (b *Broker) SetAgentStatus(t testing.TB, agentID, status string) {
	t.Helper()
	b.GQL(t, b.AdminKey, `mutation($id: ID!, $s: AgentStatus!) { updateAgent(id: $id, input: {status: $s}) { id } }`,
		map[string]any{"id": agentID, "s": status})
}

// NewStack creates a stack with a generator's key and returns its id.
func (b *Broker) NewStack(t testing.TB, genKey, name string) string {
	t.Helper()
	d := b.GQL(t, genKey, `mutation($n: String!) { createStack(input: {name: $n}) { id } }`, map[string]any{"n": name})
	return Str(d, "createStack", "id")
}

// Target points an agent at a stack (with a generator's or the admin's key).
func (b *Broker) Target(t testing.TB, key, agentID, stackID string) {
	t.Helper()
	b.GQL(t, key, `mutation($a: ID!, $s: ID!) { addAgentTarget(agentId: $a, stackId: $s) { id } }`,
		map[string]any{"a": agentID, "s": stackID})
}

// Push submits a deployment object and returns its sequence id.
func (b *Broker) Push(t testing.TB, key, stackID, yaml string) int64 {
	t.Helper()
	d := b.GQL(t, key, `mutation($s: ID!, $y: String!) { createDeploymentObject(input: {stackId: $s, yamlContent: $y}) { sequenceId } }`,
		map[string]any{"s": stackID, "y": yaml})
	return int64(Dig(d, "createDeploymentObject", "sequenceId").(float64))
}

// World is a generator with one stack and an ACTIVE agent targeting it.
type World struct {
	GenID, GenKey     string
	StackID, Stack    string // the stack's id and name
	AgentID, AgentKey string
}

// NewWorld makes a World; names are derived from prefix.
func (b *Broker) NewWorld(t testing.TB, prefix string) World {
	t.Helper()
	var w World
	w.GenID, w.GenKey = b.NewGenerator(t, prefix+"-gen")
	w.Stack = prefix + "-stack"
	w.StackID = b.NewStack(t, w.GenKey, w.Stack)
	w.AgentID, w.AgentKey = b.NewAgent(t, prefix+"-agent", prefix+"-cluster", true)
	b.Target(t, w.GenKey, w.AgentID, w.StackID)
	return w
}
