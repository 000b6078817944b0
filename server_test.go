package main

// End-to-end tests of the brokkr binary itself: the embedded default
// database, the migrate and admin commands, two replicas on one database,
// and graceful shutdown of websockets on SIGTERM.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/brokkr/brokkr/dbtest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	keyRE     = regexp.MustCompile(`brokkr_[A-Za-z0-9]+_[A-Za-z0-9]+`)
)

// brokkrBinary builds the binary once per test run.
func brokkrBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "brokkr-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "brokkr")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is one running brokkr process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	base   string
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

// lockedWriter serialises writes from the process pipes with reads by the test.
type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func startBrokkr(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	port := freePort(t)
	p := &proc{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan struct{})}
	p.cmd = exec.Command(brokkrBinary(t), args...)
	p.cmd.Env = append(os.Environ(), append(env, fmt.Sprintf("BROKKR_LISTEN=127.0.0.1:%d", port))...)
	p.cmd.Stdout = lockedWriter{&p.mu, &p.stdout}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("brokkr stdout:\n%s\nbrokkr stderr:\n%s", p.out(), p.errOut())
		}
	})
	p.waitReady()
	return p
}

func (p *proc) out() string    { p.mu.Lock(); defer p.mu.Unlock(); return p.stdout.String() }
func (p *proc) errOut() string { p.mu.Lock(); defer p.mu.Unlock(); return p.stderr.String() }

func (p *proc) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			p.t.Fatalf("brokkr exited before it was ready: %v\n%s", p.err, p.errOut())
		default:
		}
		resp, err := http.Get(p.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("brokkr not ready in time\n%s", p.errOut())
}

// stop sends SIGTERM and waits at most bound for the process to exit.
func (p *proc) stop(bound time.Duration) time.Duration {
	p.t.Helper()
	return p.signal(syscall.SIGTERM, bound)
}

// signal sends sig and waits at most bound for the process to exit, which
// it must do with status 0.
func (p *proc) signal(sig syscall.Signal, bound time.Duration) time.Duration {
	p.t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(bound):
		p.t.Fatalf("brokkr did not exit within %v of %v", bound, sig)
	}
	if p.err != nil {
		p.t.Fatalf("brokkr exited with %v\n%s", p.err, p.errOut())
	}
	return time.Since(start)
}

func (p *proc) adminKey() string {
	p.t.Helper()
	k := keyRE.FindString(p.out())
	if k == "" {
		p.t.Fatalf("no admin key printed; stdout:\n%s", p.out())
	}
	return k
}

type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func gql(t *testing.T, base, key, query string, vars map[string]any, out any) gqlResponse {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, base+"/query", bytes.NewReader(body))
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
	var r gqlResponse
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	if out != nil {
		if len(r.Errors) > 0 {
			t.Fatalf("%s: errors %s", query, raw)
		}
		if err := json.Unmarshal(r.Data, out); err != nil {
			t.Fatalf("decoding data %s: %v", r.Data, err)
		}
	}
	return r
}

// wsClient speaks graphql-transport-ws.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	ctx  context.Context
}

func dialWS(t *testing.T, base, key string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/query",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	c := &wsClient{t: t, conn: conn, ctx: ctx}
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + key}})
	if m := c.read(); m["type"] != "connection_ack" {
		t.Fatalf("expected connection_ack, got %v", m)
	}
	return c
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	if err := c.conn.Write(c.ctx, websocket.MessageText, b); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next message that is not a ping or pong.
func (c *wsClient) read() map[string]any {
	c.t.Helper()
	for {
		m, err := c.readErr()
		if err != nil {
			c.t.Fatal(err)
		}
		if m["type"] == "ping" || m["type"] == "pong" {
			continue
		}
		return m
	}
}

func (c *wsClient) readErr() (map[string]any, error) {
	_, b, err := c.conn.Read(c.ctx)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

const feedSub = `subscription($after: Int64) { agentDeploymentObjects(after: $after) { sequenceId yamlContent isDeletionMarker } }`

// subscribeFeed subscribes to the agent's feed, resuming after the given
// sequence if one is given.
func (c *wsClient) subscribeFeed(after ...int64) {
	c.t.Helper()
	vars := map[string]any{}
	if len(after) > 0 {
		vars["after"] = after[0]
	}
	c.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": feedSub, "variables": vars}})
}

// closed reads, from now on on its own goroutine, until the server closes
// the connection, and then yields the close code.
func (c *wsClient) closed() <-chan websocket.StatusCode {
	code := make(chan websocket.StatusCode, 1)
	go func() {
		for {
			if _, err := c.readErr(); err != nil {
				code <- websocket.CloseStatus(err)
				return
			}
		}
	}()
	return code
}

// expectClose waits for the close code from closed.
func expectClose(t *testing.T, closed <-chan websocket.StatusCode, want websocket.StatusCode, within time.Duration, who string) {
	t.Helper()
	select {
	case code := <-closed:
		if code != want {
			t.Fatalf("%s: websocket closed with %v, want %v", who, code, want)
		}
	case <-time.After(within):
		t.Fatalf("%s: websocket still open after %v", who, within)
	}
}

// nextObject reads the next agentDeploymentObjects payload.
func (c *wsClient) nextObject() (seq int64, content string) {
	c.t.Helper()
	m := c.read()
	if m["type"] != "next" {
		c.t.Fatalf("expected next, got %v", m)
	}
	obj := m["payload"].(map[string]any)["data"].(map[string]any)["agentDeploymentObjects"].(map[string]any)
	return int64(obj["sequenceId"].(float64)), obj["yamlContent"].(string)
}

// world is one generator, one stack and one ACTIVE agent targeting it.
type world struct {
	genKey, agentKey, stackID, agentID string
}

func makeWorld(t *testing.T, base, adminKey string) world {
	t.Helper()
	var g struct {
		CreateGenerator struct {
			APIKey    string `json:"apiKey"`
			Generator struct{ ID string }
		}
	}
	gql(t, base, adminKey, `mutation { createGenerator(input: {name: "ci"}) { apiKey generator { id } } }`, nil, &g)
	var s struct{ CreateStack struct{ ID string } }
	gql(t, base, g.CreateGenerator.APIKey, `mutation { createStack(input: {name: "web"}) { id } }`, nil, &s)
	var a struct {
		CreateAgent struct {
			APIKey string `json:"apiKey"`
			Agent  struct{ ID string }
		}
	}
	gql(t, base, adminKey, `mutation { createAgent(input: {name: "a1", clusterName: "c1"}) { apiKey agent { id } } }`, nil, &a)
	w := world{genKey: g.CreateGenerator.APIKey, agentKey: a.CreateAgent.APIKey, stackID: s.CreateStack.ID, agentID: a.CreateAgent.Agent.ID}
	gql(t, base, adminKey, `mutation($id: ID!) { updateAgent(id: $id, input: {status: ACTIVE}) { id } }`, map[string]any{"id": w.agentID}, &struct{}{})
	gql(t, base, w.genKey, `mutation($a: ID!, $s: ID!) { addAgentTarget(agentId: $a, stackId: $s) { id } }`, map[string]any{"a": w.agentID, "s": w.stackID}, &struct{}{})
	return w
}

func submit(t *testing.T, base, key, stackID, content string) int64 {
	t.Helper()
	var r struct {
		CreateDeploymentObject struct {
			SequenceID int64 `json:"sequenceId"`
		}
	}
	gql(t, base, key, `mutation($s: ID!, $y: String!) { createDeploymentObject(input: {stackId: $s, yamlContent: $y}) { sequenceId } }`,
		map[string]any{"s": stackID, "y": content}, &r)
	return r.CreateDeploymentObject.SequenceID
}

// The embedded default: no DATABASE_URL, a private cluster under the data
// dir that is created once, reused on the next start, and stopped on exit;
// the admin key is printed on the first start only.
func TestServeWithEmbeddedDefault(t *testing.T) {
	dataDir := t.TempDir()
	env := []string{"DATABASE_URL=", "BROKKR_DATA_DIR=" + dataDir}

	p := startBrokkr(t, env, "serve")
	key := p.adminKey()
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(p.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
	}
	var v struct{ Viewer struct{ Role string } }
	gql(t, p.base, key, `{ viewer { role } }`, nil, &v)
	if v.Viewer.Role != "ADMIN" {
		t.Fatalf("viewer role %q, want ADMIN", v.Viewer.Role)
	}
	gql(t, p.base, key, `mutation { createGenerator(input: {name: "kept"}) { apiKey } }`, nil, &struct{}{})
	p.stop(30 * time.Second)
	if _, err := os.Stat(filepath.Join(dataDir, "pg", "pgdata", "postmaster.pid")); !os.IsNotExist(err) {
		t.Fatalf("embedded PostgreSQL still running after the broker stopped (postmaster.pid: %v)", err)
	}

	// Second start: same cluster, data kept, no new admin key printed.
	p2 := startBrokkr(t, env, "serve")
	if k := keyRE.FindString(p2.out()); k != "" {
		t.Fatalf("second start printed an admin key again: %s", k)
	}
	var gs struct{ Generators struct{ TotalCount int } }
	gql(t, p2.base, key, `{ generators { totalCount } }`, nil, &gs)
	if gs.Generators.TotalCount != 1 {
		t.Fatalf("generators after restart: %d, want 1", gs.Generators.TotalCount)
	}
	p2.stop(30 * time.Second)
}

// migrate up|down|status by hand, and admin rotate-key killing the old key.
func TestMigrateAndAdminCommands(t *testing.T) {
	db := dbtest.New(t)
	env := append(os.Environ(), "DATABASE_URL="+db.URL)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(brokkrBinary(t), args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("brokkr %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("migrate", "status"); strings.Contains(out, "pending") || !strings.Contains(out, "applied") {
		t.Fatalf("fresh test database should be fully migrated:\n%s", out)
	}
	out := run("migrate", "down", "-all")
	if strings.Contains(out, "applied") {
		t.Fatalf("after down -all nothing should be applied:\n%s", out)
	}
	out = run("migrate", "up")
	if strings.Contains(out, "pending") {
		t.Fatalf("after up nothing should be pending:\n%s", out)
	}

	p := startBrokkr(t, []string{"DATABASE_URL=" + db.URL}, "serve")
	oldKey := p.adminKey()
	rotated := keyRE.FindString(run("admin", "rotate-key"))
	if rotated == "" || rotated == oldKey {
		t.Fatalf("rotate-key printed %q", rotated)
	}
	r := gql(t, p.base, oldKey, `{ viewer { role } }`, nil, nil)
	if len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != "UNAUTHENTICATED" {
		t.Fatalf("old admin key still accepted: %+v", r)
	}
	var v struct{ Viewer struct{ Role string } }
	gql(t, p.base, rotated, `{ viewer { role } }`, nil, &v)
	if v.Viewer.Role != "ADMIN" {
		t.Fatalf("new admin key: role %q", v.Viewer.Role)
	}
	p.stop(30 * time.Second)
}

// Two brokkr processes on one database: a deployment object submitted to
// one reaches an agent subscribed on the other (fan-out through PostgreSQL).
func TestTwoReplicasFanOut(t *testing.T) {
	db := dbtest.New(t)
	env := []string{"DATABASE_URL=" + db.URL}
	a := startBrokkr(t, env, "serve")
	b := startBrokkr(t, env, "serve")
	admin := a.adminKey()
	w := makeWorld(t, a.base, admin)

	ws := dialWS(t, b.base, w.agentKey)
	ws.subscribeFeed()
	seq := submit(t, a.base, w.genKey, w.stackID, "kind: ConfigMap\nname: one\n")
	got, content := ws.nextObject()
	if got != seq || !strings.Contains(content, "name: one") {
		t.Fatalf("replica b delivered seq %d %q, want %d", got, content, seq)
	}
	seq2 := submit(t, b.base, w.genKey, w.stackID, "kind: ConfigMap\nname: two\n")
	if got, _ := ws.nextObject(); got != seq2 {
		t.Fatalf("second object: seq %d, want %d", got, seq2)
	}
}

// SIGTERM closes open websockets with a close code clients reconnect on,
// and the process exits within its bound; after a restart the agent
// resumes with `after` and receives exactly what it missed.
func TestSigtermClosesWebsocketsAndResumeAfterRestart(t *testing.T) {
	db := dbtest.New(t)
	env := []string{"DATABASE_URL=" + db.URL, "BROKKR_SHUTDOWN_TIMEOUT=5s"}
	p := startBrokkr(t, env, "serve")
	admin := p.adminKey()
	w := makeWorld(t, p.base, admin)

	ws := dialWS(t, p.base, w.agentKey)
	ws.subscribeFeed()
	first := submit(t, p.base, w.genKey, w.stackID, "n: 1\n")
	if got, _ := ws.nextObject(); got != first {
		t.Fatalf("got seq %d, want %d", got, first)
	}

	closed := ws.closed()
	took := p.stop(15 * time.Second)
	// 1012 (service restart) is a code graphql-ws clients retry on.
	expectClose(t, closed, websocket.StatusServiceRestart, 5*time.Second, "shutdown")
	t.Logf("shutdown took %v", took)

	// While the broker is down, nothing can be submitted through it; write
	// two objects through a second start, then resume a third connection.
	p2 := startBrokkr(t, env, "serve")
	s2 := submit(t, p2.base, w.genKey, w.stackID, "n: 2\n")
	s3 := submit(t, p2.base, w.genKey, w.stackID, "n: 3\n")
	p2.stop(15 * time.Second)

	p3 := startBrokkr(t, env, "serve")
	ws3 := dialWS(t, p3.base, w.agentKey)
	ws3.subscribeFeed(first)
	for _, want := range []int64{s2, s3} {
		if got, _ := ws3.nextObject(); got != want {
			t.Fatalf("resume after %d: got seq %d, want %d", first, got, want)
		}
	}
	s4 := submit(t, p3.base, w.genKey, w.stackID, "n: 4\n")
	if got, _ := ws3.nextObject(); got != s4 {
		t.Fatalf("live after resume: got seq %d, want %d (a duplicate or gap at the seam)", got, s4)
	}
}

// Rotating an agent's key through one replica closes the agent's websocket
// on another replica at once, with 4401, and the old key no longer opens one.
func TestKeyRotationClosesWebsocketsOnEveryReplica(t *testing.T) {
	db := dbtest.New(t)
	env := []string{"DATABASE_URL=" + db.URL}
	a := startBrokkr(t, env, "serve")
	b := startBrokkr(t, env, "serve")
	admin := a.adminKey()
	w := makeWorld(t, a.base, admin)

	ws := dialWS(t, b.base, w.agentKey)
	ws.subscribeFeed()
	seq := submit(t, a.base, w.genKey, w.stackID, "n: 1\n")
	if got, _ := ws.nextObject(); got != seq {
		t.Fatalf("got seq %d, want %d", got, seq)
	}
	closed := ws.closed()
	var r struct {
		RotateAgentKey struct {
			APIKey string `json:"apiKey"`
		}
	}
	gql(t, a.base, admin, `mutation($id: ID!) { rotateAgentKey(id: $id) { apiKey } }`, map[string]any{"id": w.agentID}, &r)
	expectClose(t, closed, 4401, 10*time.Second, "the rotated key's websocket on the other replica")

	// The old key cannot open a new connection; the new one can, and resumes.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(b.base, "http")+"/query",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	init, _ := json.Marshal(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + w.agentKey}})
	if err := conn.Write(ctx, websocket.MessageText, init); err != nil {
		t.Fatal(err)
	}
	for {
		if _, _, err := conn.Read(ctx); err != nil {
			if code := websocket.CloseStatus(err); code != 4401 {
				t.Fatalf("old key: closed with %v (%v), want 4401", code, err)
			}
			break
		}
	}
	ws2 := dialWS(t, b.base, r.RotateAgentKey.APIKey)
	ws2.subscribeFeed(seq)
	seq2 := submit(t, a.base, w.genKey, w.stackID, "n: 2\n")
	if got, _ := ws2.nextObject(); got != seq2 {
		t.Fatalf("after rotation: got seq %d, want %d", got, seq2)
	}
}

// A connection with no subscription at all is closed too when its key stops
// working: the admin's, after `brokkr admin rotate-key` in another process,
// and a generator's, after its key is rotated through another replica.
func TestRotationClosesIdleWebsockets(t *testing.T) {
	db := dbtest.New(t)
	env := []string{"DATABASE_URL=" + db.URL}
	a := startBrokkr(t, env, "serve")
	b := startBrokkr(t, env, "serve")
	admin := a.adminKey()
	var g struct {
		CreateGenerator struct {
			APIKey    string `json:"apiKey"`
			Generator struct{ ID string }
		}
	}
	gql(t, a.base, admin, `mutation { createGenerator(input: {name: "idle"}) { apiKey generator { id } } }`, nil, &g)

	adminWS := dialWS(t, b.base, admin).closed()
	genWS := dialWS(t, b.base, g.CreateGenerator.APIKey).closed()
	otherWS := dialWS(t, b.base, admin).closed()

	gql(t, a.base, admin, `mutation($id: ID!) { rotateGeneratorKey(id: $id) { apiKey } }`,
		map[string]any{"id": g.CreateGenerator.Generator.ID}, &struct{}{})
	expectClose(t, genWS, 4401, 10*time.Second, "generator")
	select {
	case code := <-adminWS:
		t.Fatalf("admin websocket closed (%v) by a generator's rotation", code)
	case <-time.After(300 * time.Millisecond):
	}

	cmd := exec.Command(brokkrBinary(t), "admin", "rotate-key")
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("admin rotate-key: %v\n%s", err, out)
	}
	expectClose(t, adminWS, 4401, 10*time.Second, "admin")
	expectClose(t, otherWS, 4401, 10*time.Second, "second admin connection")
}

// serve's garbage-collector target: 200 unless GOGC is set, which the
// runtime has applied and serve leaves alone.
func TestGCPercentDefault(t *testing.T) {
	t.Setenv("GOGC", "")
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GCPercent != 200 {
		t.Fatalf("GCPercent %d without GOGC, want 200", cfg.GCPercent)
	}
	t.Setenv("GOGC", "100")
	if cfg, err = loadConfig(); err != nil || cfg.GCPercent != 0 {
		t.Fatalf("GCPercent %d (%v) with GOGC set, want 0 (left to the runtime)", cfg.GCPercent, err)
	}
}

// BROKKR_STATEMENT_TIMEOUT: unset takes the models default (0), a duration
// is used as it is, 0 sets none (negative), anything else is refused.
func TestStatementTimeoutConfig(t *testing.T) {
	for _, c := range []struct {
		env     string
		want    time.Duration
		wantErr bool
	}{
		{"", 0, false},
		{"250ms", 250 * time.Millisecond, false},
		{"0", -1, false},
		{"-1s", 0, true},
		{"ten", 0, true},
	} {
		t.Setenv("BROKKR_STATEMENT_TIMEOUT", c.env)
		cfg, err := loadConfig()
		if (err != nil) != c.wantErr || (err == nil && cfg.StatementTimeout != c.want) {
			t.Errorf("BROKKR_STATEMENT_TIMEOUT=%q: %v, %v; want %v (error %v)", c.env, cfg.StatementTimeout, err, c.want, c.wantErr)
		}
	}
}

// BROKKR_READ_PLANNER: on (or unset) serves queries with the read planner,
// off with gqlgen's executor alone; anything else is refused.
func TestReadPlannerConfig(t *testing.T) {
	for _, c := range []struct {
		env          string
		off, wantErr bool
	}{{"", false, false}, {"on", false, false}, {"off", true, false}, {"no", false, true}} {
		t.Setenv("BROKKR_READ_PLANNER", c.env)
		cfg, err := loadConfig()
		if (err != nil) != c.wantErr || (err == nil && cfg.ReadPlannerOff != c.off) {
			t.Errorf("BROKKR_READ_PLANNER=%q: off %v, %v; want off %v (error %v)", c.env, cfg.ReadPlannerOff, err, c.off, c.wantErr)
		}
	}
}
