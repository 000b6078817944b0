package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/feed"
)

// wsClient is a graphql-transport-ws client with one key.
type wsClient struct {
	t       *testing.T
	ctx     context.Context
	conn    *websocket.Conn
	pending map[string][]wsMsg // read while waiting for another id
}

func (w *world) wsClient(t *testing.T, ctx context.Context, key string) *wsClient {
	t.Helper()
	conn, _, err := w.dialWS(t, ctx, "graphql-transport-ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := initWS(ctx, conn, key); err != nil || m.Type != "connection_ack" {
		t.Fatalf("init: %+v %v", m, err)
	}
	return &wsClient{t: t, ctx: ctx, conn: conn, pending: map[string][]wsMsg{}}
}

func (c *wsClient) subscribe(id, query string, vars map[string]any) {
	c.t.Helper()
	p, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err := wsjson.Write(c.ctx, c.conn, wsMsg{ID: id, Type: "subscribe", Payload: p}); err != nil {
		c.t.Fatal(err)
	}
}

// next returns the next result for id: its data, or its error code.
func (c *wsClient) next(id string) (map[string]any, string) {
	c.t.Helper()
	for {
		var m wsMsg
		if q := c.pending[id]; len(q) > 0 {
			m, c.pending[id] = q[0], q[1:]
		} else if err := wsjson.Read(c.ctx, c.conn, &m); err != nil {
			c.t.Fatalf("waiting for %s: %v", id, err)
		}
		if m.ID != id {
			if m.ID != "" {
				c.pending[m.ID] = append(c.pending[m.ID], m)
			}
			continue
		}
		switch m.Type {
		case "next":
			var r struct {
				Data   map[string]any
				Errors []gqlError
			}
			if err := json.Unmarshal(m.Payload, &r); err != nil {
				c.t.Fatal(err)
			}
			if len(r.Errors) > 0 {
				code, _ := r.Errors[0].Extensions["code"].(string)
				return nil, code
			}
			return r.Data, ""
		case "error":
			var errs []gqlError
			_ = json.Unmarshal(m.Payload, &errs)
			if len(errs) > 0 {
				code, _ := errs[0].Extensions["code"].(string)
				return nil, code
			}
			return nil, "ERROR"
		case "complete":
			return nil, "COMPLETE"
		}
	}
}

// The dashboard subscriptions and agentTargetChanges through the API's
// resolvers and the real feed, scoped by role.
func TestDashboardSubscriptions(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := newWorldWith(t, func(e *env) api.Config { return api.Config{Feed: runFeed(t, ctx, e)} })

	gen := w.wsClient(t, ctx, w.genA.key)
	gen.subscribe("stack", `subscription($s: ID!) { stackDeploymentObjects(stackId: $s, after: 0) { id sequenceId } }`, map[string]any{"s": w.stackA})
	gen.subscribe("foreign", `subscription($s: ID!) { stackDeploymentObjects(stackId: $s) { id } }`, map[string]any{"s": w.stackB})
	gen.subscribe("events", `subscription { agentEvents { id status deploymentObject { id } } }`, nil)
	if _, code := gen.next("foreign"); code != "NOT_FOUND" {
		t.Fatalf("a generator subscribing to another's stack: %q, want NOT_FOUND", code)
	}
	// Replay after 0: A's two objects, in sequence order.
	d1, _ := gen.next("stack")
	d2, _ := gen.next("stack")
	if str(d1, "stackDeploymentObjects", "id") != w.objA1 || str(d2, "stackDeploymentObjects", "id") != w.objA2 {
		t.Fatalf("replay: %v %v", d1, d2)
	}

	agent := w.wsClient(t, ctx, w.agent2.key)
	agent.subscribe("targets", `subscription { agentTargetChanges { action agentId stackId at } }`, nil)
	agent.subscribe("other", `subscription($a: ID!) { agentTargetChanges(agentId: $a) { action } }`, map[string]any{"a": w.agent1.id})
	if _, code := agent.next("other"); code != "NOT_FOUND" {
		t.Fatalf("an agent following another agent's targets: %q, want NOT_FOUND", code)
	}
	time.Sleep(200 * time.Millisecond) // let the subscriptions settle before the changes below

	// Live: a new object on A; a target added for agent 2; an event by agent 1.
	d := w.ok(t, w.genA.key, `mutation($s: ID!) { createDeploymentObject(input: {stackId: $s, yamlContent: "live: 1"}) { id } }`, map[string]any{"s": w.stackA})
	newObj := str(d, "createDeploymentObject", "id")
	if got, code := gen.next("stack"); code != "" || str(got, "stackDeploymentObjects", "id") != newObj {
		t.Fatalf("live object: %v %q", got, code)
	}
	w.ok(t, w.genA.key, `mutation($a: ID!, $s: ID!) { addAgentTarget(agentId: $a, stackId: $s) { id } }`, map[string]any{"a": w.agent2.id, "s": w.stackA})
	if got, code := agent.next("targets"); code != "" || str(got, "agentTargetChanges", "action") != "ADDED" ||
		str(got, "agentTargetChanges", "stackId") != w.stackA || str(got, "agentTargetChanges", "agentId") != w.agent2.id {
		t.Fatalf("target change: %v %q", got, code)
	}
	d = w.ok(t, w.agent1.key, `mutation($o: ID!) { reportAgentEvent(input: {deploymentObjectId: $o, eventType: "DEPLOY", status: "FAILURE", message: "boom"}) { id } }`, map[string]any{"o": newObj})
	ev := str(d, "reportAgentEvent", "id")
	got, code := gen.next("events")
	if code != "" || str(got, "agentEvents", "id") != ev || str(got, "agentEvents", "deploymentObject", "id") != newObj {
		t.Fatalf("agent event: %v %q", got, code)
	}
	if strings.Contains(w.logText(), "panic") {
		t.Fatalf("server log mentions a panic:\n%s", w.logText())
	}
}

// runFeed starts a feed hub over e's database for the test's duration.
func runFeed(t *testing.T, ctx context.Context, e *env) *feed.Hub {
	t.Helper()
	hub := feed.New(e.db.Bun, e.db.URL, nil, feed.Options{})
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
	return hub
}
