package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/brokkr/brokkr/api"
)

// logLine is one line of the server's log (slog's text format), by key.
type logLine map[string]string

// parseLogLine reads key=value pairs, values quoted or bare.
func parseLogLine(s string) logLine {
	l := logLine{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		v := rest
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				break
			}
			v, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else if i := strings.IndexByte(rest, ' '); i >= 0 {
			v, rest = rest[:i], rest[i:]
		} else {
			rest = ""
		}
		l[k] = v
		s = rest
	}
	return l
}

// logLines is every line of the log whose msg is msg.
func (e *env) logLines(msg string) []logLine {
	var out []logLine
	for _, line := range strings.Split(e.logText(), "\n") {
		if l := parseLogLine(line); l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// waitLogLine waits for a line with msg whose fields include want (the
// server logs a request once its answer is written, so the client can be
// first), and returns it.
func (e *env) waitLogLine(t *testing.T, msg string, want logLine) logLine {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, l := range e.logLines(msg) {
			match := true
			for k, v := range want {
				match = match && l[k] == v
			}
			if match {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q line with %v in the log:\n%s", msg, want, e.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// One access-log line per HTTP request: method, route, status, duration,
// principal, the operation's name and type, the error codes (those of the
// guard's refusals and of refusals before GraphQL too); probes at debug.
func TestAccessLogHTTP(t *testing.T) {
	t.Parallel()
	w := newWorld(t, api.Config{})
	w.ok(t, w.admin, `mutation($id: ID!) { updateGenerator(id: $id, input: {rateLimitPerMinute: 1}) { id } }`, map[string]any{"id": w.genB.id})

	w.ok(t, w.admin, `query AdminLooks { viewer { role } }`, nil)
	l := w.waitLogLine(t, "http request", logLine{"operation_name": "AdminLooks"})
	if l["level"] != "INFO" || l["method"] != "POST" || l["route"] != "/query" || l["status"] != "200" || l["principal"] != "admin" ||
		l["operation_type"] != "query" || l["error_codes"] != "" || l["principal_id"] != "" || l["remote"] == "" {
		t.Errorf("admin query: %v", l)
	}
	if d, err := strconv.ParseFloat(l["duration_ms"], 64); err != nil || d < 0 {
		t.Errorf("duration_ms %q", l["duration_ms"])
	}
	if n, err := strconv.Atoi(l["bytes"]); err != nil || n < len(`{"data":{"viewer":{"role":"ADMIN"}}}`) {
		t.Errorf("bytes %q", l["bytes"])
	}

	w.ok(t, w.genA.key, `mutation Push($s: ID!) { createDeploymentObject(input: {stackId: $s, yamlContent: "a: 1"}) { id } }`, map[string]any{"s": w.stackA})
	l = w.waitLogLine(t, "http request", logLine{"operation_name": "Push"})
	if l["principal"] != "generator" || l["principal_id"] != w.genA.id || l["operation_type"] != "mutation" {
		t.Errorf("generator mutation: %v", l)
	}

	// The guard refuses the second request of a generator allowed one a
	// minute: RATE_LIMITED, 429.
	w.ok(t, w.genB.key, `query First { viewer { role } }`, nil)
	w.fails(t, w.genB.key, "RATE_LIMITED", `query Second { viewer { role } }`, nil)
	l = w.waitLogLine(t, "http request", logLine{"operation_name": "Second"})
	if l["status"] != "429" || l["error_codes"] != "[RATE_LIMITED]" || l["principal"] != "generator" || l["principal_id"] != w.genB.id {
		t.Errorf("rate limited: %v", l)
	}

	w.fails(t, "brokkr_nope_nope", "UNAUTHENTICATED", `query BadKey { viewer { role } }`, nil)
	l = w.waitLogLine(t, "http request", logLine{"operation_name": "BadKey"})
	if l["principal"] != "anonymous" || l["error_codes"] != "[UNAUTHENTICATED]" {
		t.Errorf("bad key: %v", l)
	}

	// Refused before an operation ran: a parse error, a body too large.
	w.fails(t, w.admin, "GRAPHQL_PARSE_FAILED", `query Broken { viewer { role }`, nil)
	w.waitLogLine(t, "http request", logLine{"status": "422", "error_codes": "[GRAPHQL_PARSE_FAILED]", "principal": "admin"})
	big := append([]byte(`{"query":"{ viewer { role } }","x":"`), bytes.Repeat([]byte("a"), api.DefaultMaxBodyBytes)...)
	if r := w.post(t, w.admin, append(big, `"}`...)); r.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("large body: %d", r.Status)
	}
	w.waitLogLine(t, "http request", logLine{"status": "413", "route": "/query", "error_codes": "[BAD_USER_INPUT]"})

	// Other routes: GraphiQL at info, probes at debug, no route at all.
	for _, p := range []string{"/", "/healthz", "/nope"} {
		resp, err := w.srv.Client().Get(w.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	w.waitLogLine(t, "http request", logLine{"route": "/", "method": "GET", "status": "200", "level": "INFO", "principal": "anonymous"})
	w.waitLogLine(t, "http request", logLine{"route": "/healthz", "status": "200", "level": "DEBUG"})
	w.waitLogLine(t, "http request", logLine{"route": "(none)", "status": "404"})
}

// One line when a websocket is accepted and one when it ends: close code,
// who closed, duration, principal (from connection_init).
func TestAccessLogWebsockets(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := newWorldWith(t, func(e *env) api.Config { return api.Config{Feed: runFeed(t, ctx, e)} })

	// An agent that subscribes, then closes normally.
	c := w.wsClient(t, ctx, w.agent1.key)
	c.subscribe("1", `subscription { agentDeploymentObjects { id } }`, nil)
	if _, code := c.next("1"); code != "" {
		t.Fatalf("subscription: %s", code)
	}
	opened := w.waitLogLine(t, "websocket open", logLine{"subprotocol": "graphql-transport-ws"})
	if err := c.conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
		t.Fatal(err)
	}
	l := w.waitLogLine(t, "websocket close", logLine{"websocket": opened["websocket"]})
	if l["close_code"] != "1000" || l["closed_by"] != "client" || l["close_reason"] != "bye" || l["principal"] != "agent" ||
		l["principal_id"] != w.agent1.id || l["remote"] != opened["remote"] || l["duration_ms"] == "" {
		t.Errorf("agent's close: %v (open: %v)", l, opened)
	}

	// A bad key in connection_init: the server closes with 4401.
	conn, _, err := w.dialWS(t, ctx, "graphql-transport-ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := json.Marshal(map[string]any{"Authorization": "Bearer brokkr_nope_nope"})
	if err := wsjson.Write(ctx, conn, wsMsg{Type: "connection_init", Payload: p}); err != nil {
		t.Fatal(err)
	}
	if code := readUntilClose(ctx, conn); code != 4401 {
		t.Fatalf("bad key closed with %d", code)
	}
	l = w.waitLogLine(t, "websocket close", logLine{"close_code": "4401"})
	if l["closed_by"] != "server" || l["principal"] != "anonymous" || !strings.Contains(l["close_reason"], "invalid API key") {
		t.Errorf("bad key's close: %v", l)
	}
	// A connection dropped without a close frame: 1006, by the network.
	drop := w.wsClient(t, ctx, w.genA.key)
	dropped := w.waitLogLine(t, "websocket open", logLine{"websocket": fmt.Sprint(mustAtoi(t, opened["websocket"]) + 2)})
	_ = drop.conn.CloseNow()
	l = w.waitLogLine(t, "websocket close", logLine{"websocket": dropped["websocket"]})
	if l["close_code"] != "1006" || l["closed_by"] != "network" || l["principal"] != "generator" || l["principal_id"] != w.genA.id {
		t.Errorf("dropped connection's close: %v", l)
	}

	// The upgrades are not logged as HTTP requests as well.
	for _, l := range w.logLines("http request") {
		if l["status"] == "101" {
			t.Errorf("an upgrade logged as an HTTP request: %v", l)
		}
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// metric reads one sample from a /metrics text: series is the name with
// its labels as written ("brokkr_subscriptions{kind=\"agentEvents\"}").
func metric(t *testing.T, body, series string) (float64, bool) {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f, true
		}
	}
	return 0, false
}

func (e *env) metrics(t *testing.T) string {
	t.Helper()
	resp, err := e.srv.Client().Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitMetric waits until series has the value want.
func (e *env) waitMetric(t *testing.T, series string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		body := e.metrics(t)
		if v, ok := metric(t, body, series); ok && v == want {
			return
		}
		if time.Now().After(deadline) {
			v, ok := metric(t, body, series)
			t.Fatalf("%s = %v (present: %v), want %v", series, v, ok, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// /metrics reports the database pool, open subscriptions by kind, the
// feed's lag and cut-offs, and the rate-limit refusals (the guard's
// included, which gqlgen's response hook never saw).
func TestMetricsOperability(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	feedCtx, stopFeed := context.WithCancel(ctx)
	w := newWorldWith(t, func(e *env) api.Config {
		return api.Config{Feed: runFeed(t, feedCtx, e), MaxWebsocketsPerKey: 1}
	})

	body := w.metrics(t)
	for _, s := range []string{
		`go_sql_max_open_connections{db_name="brokkr"}`, `go_sql_open_connections{db_name="brokkr"}`,
		`go_sql_in_use_connections{db_name="brokkr"}`, `go_sql_wait_count_total{db_name="brokkr"}`,
		`brokkr_feed_slow_subscriber_cutoffs_total{kind="agentDeploymentObjects"}`,
		`brokkr_feed_slow_subscriber_cutoffs_total{kind="agentTargetChanges"}`,
		`brokkr_feed_slow_subscriber_cutoffs_total{kind="stackDeploymentObjects"}`,
		`brokkr_feed_slow_subscriber_cutoffs_total{kind="agentEvents"}`,
		`brokkr_rate_limit_refusals_total{limit="generator_requests"}`,
		`brokkr_rate_limit_refusals_total{limit="websockets_per_key"}`,
		`brokkr_subscriptions{kind="stackDeploymentObjects"}`, `brokkr_subscriptions{kind="agentEvents"}`,
	} {
		if _, ok := metric(t, body, s); !ok {
			t.Errorf("/metrics lacks %s", s)
		}
	}
	if v, _ := metric(t, body, `go_sql_open_connections{db_name="brokkr"}`); v < 1 {
		t.Errorf("the pool has %v connections open", v)
	}

	// Subscriptions by kind, while they run.
	c := w.wsClient(t, ctx, w.agent1.key)
	c.subscribe("feed", `subscription { agentDeploymentObjects { id } }`, nil)
	c.subscribe("targets", `subscription { agentTargetChanges { action } }`, nil)
	if _, code := c.next("feed"); code != "" {
		t.Fatal(code)
	}
	w.waitMetric(t, `brokkr_subscriptions{kind="agentDeploymentObjects"}`, 1)
	w.waitMetric(t, `brokkr_subscriptions{kind="agentTargetChanges"}`, 1)
	// A second websocket of the same key passes the cap of one: 1013.
	conn, _, err := w.dialWS(t, ctx, "graphql-transport-ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := initWS(ctx, conn, w.agent1.key); websocket.CloseStatus(err) != 1013 {
		t.Fatalf("second websocket of a key: %v, want 1013", err)
	}
	w.waitMetric(t, `brokkr_rate_limit_refusals_total{limit="websockets_per_key"}`, 1)
	// The transport's refusal goes out through the error presenter, as
	// RATE_LIMITED (a legacy client reads it in connection_error).
	w.waitMetric(t, `brokkr_graphql_errors_total{code="RATE_LIMITED"}`, 1)
	if err := wsjson.Write(ctx, c.conn, wsMsg{ID: "targets", Type: "complete"}); err != nil {
		t.Fatal(err)
	}
	w.waitMetric(t, `brokkr_subscriptions{kind="agentTargetChanges"}`, 0)
	_ = c.conn.Close(websocket.StatusNormalClosure, "")
	w.waitMetric(t, `brokkr_subscriptions{kind="agentDeploymentObjects"}`, 0)

	// The feed's lag: none while it runs; once it stops, every object
	// committed after is lag.
	w.waitMetric(t, `brokkr_feed_lag_sequences`, 0)
	committed, _ := metric(t, w.metrics(t), `brokkr_feed_committed_sequence`)
	if dispatched, _ := metric(t, w.metrics(t), `brokkr_feed_dispatched_sequence`); committed < 3 || dispatched != committed {
		t.Fatalf("committed %v, dispatched %v", committed, dispatched)
	}
	stopFeed()
	for range 2 {
		w.ok(t, w.genA.key, `mutation($s: ID!) { createDeploymentObject(input: {stackId: $s, yamlContent: "lag: 1"}) { id } }`, map[string]any{"s": w.stackA})
	}
	w.waitMetric(t, `brokkr_feed_lag_sequences`, 2)
	w.waitMetric(t, `brokkr_feed_committed_sequence`, committed+2)

	// A generator allowed one request a minute: the second is refused by
	// the guard, counted as a refusal and as an error by code.
	w.ok(t, w.admin, `mutation($id: ID!) { updateGenerator(id: $id, input: {rateLimitPerMinute: 1}) { id } }`, map[string]any{"id": w.genB.id})
	w.ok(t, w.genB.key, `{ viewer { role } }`, nil)
	w.fails(t, w.genB.key, "RATE_LIMITED", `{ viewer { role } }`, nil)
	w.waitMetric(t, `brokkr_rate_limit_refusals_total{limit="generator_requests"}`, 1)
	w.waitMetric(t, `brokkr_graphql_errors_total{code="RATE_LIMITED"}`, 2)
}
