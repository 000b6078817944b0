package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
)

// One tenancy boundary (issue 9): every subscription shows, for every role,
// the rows the query that shows the same thing shows, over real HTTP and
// websockets. The pairs:
//   - the agentEvents query and subscription (with and without a filter);
//   - stack(id) { deploymentObjects } and stackDeploymentObjects(after: 0)
//     (admins: stack(id, includeDeleted: true), as they may follow a
//     deleted stack);
//   - agent(id) { desiredState } and the first frames of
//     agentDeploymentObjects without after;
//   - an agent's deploymentObjects query and its feed's replay from
//     after: 0 (agents only: an admin following an agent's feed has no
//     query of its own that shows the agent's objects).
//
// The roles: an admin, the generator owning the stacks, another generator
// (owning one stack the active agent targets), the targeting agent while
// ACTIVE and while INACTIVE, and another agent. Where the query answers
// NOT_FOUND, the subscription does too. The one difference by design:
// generators may read an agent's desiredState (the objects of their own
// stacks) but follow no agent's feed (FORBIDDEN).
func TestSubscriptionsAgreeWithQueries(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	s := startServer(t, db, feed.Options{PollInterval: 50 * time.Millisecond})
	tw := newTenancyWorld(t, db, s)
	tw.desiredStateAgrees(t)
	tw.replayAgrees(t)
	tw.dashboardsAgree(t)
}

// tenancyWorld: the owner's stacks live (two objects, one of them deleted
// since) and gone (deleted: its marker); the other generator's stack so.
// Agent act (ACTIVE) targets live, gone and so; idle (INACTIVE) targets
// live; lone (ACTIVE) targets so.
type tenancyWorld struct {
	*world
	other           string // the other generator's key
	live, gone, so  string
	act, idle, lone agent
	roles           []role
}

type role struct {
	name, key string
	admin     bool
}

func newTenancyWorld(t *testing.T, db *dbtest.DB, s *server) *tenancyWorld {
	w := &tenancyWorld{world: newWorld(t, db, s)}
	d := gql(t, s, w.admin, `mutation { createGenerator(input: {name: "other"}) { apiKey } }`, nil)
	w.other = str(d, "createGenerator", "apiKey")
	w.live, w.gone = w.stack(), w.stack()
	d = gql(t, s, w.other, `mutation { createStack(input: {name: "so"}) { id } }`, nil)
	w.so = str(d, "createStack", "id")
	w.act, w.lone = w.agent(), w.agent()
	d = gql(t, s, w.admin, `mutation { createAgent(input: {name: "idle", clusterName: "c"}) { agent { id } apiKey } }`, nil)
	w.idle = agent{str(d, "createAgent", "agent", "id"), str(d, "createAgent", "apiKey")}
	for _, st := range []string{w.live, w.gone} {
		w.target(w.act, st)
	}
	w.target(w.idle, w.live)
	for _, a := range []agent{w.act, w.lone} {
		gql(t, s, w.other, `mutation($a: ID!, $s: ID!) { addAgentTarget(agentId: $a, stackId: $s) { id } }`, map[string]any{"a": a.id, "s": w.so})
	}
	w.newObject(w.genKey, w.live)
	doomed := w.newObject(w.genKey, w.live)
	w.newObject(w.genKey, w.gone)
	w.newObject(w.other, w.so)
	gql(t, s, w.genKey, `mutation($id: ID!) { deleteDeploymentObject(id: $id) { id } }`, map[string]any{"id": doomed})
	gql(t, s, w.genKey, `mutation($id: ID!) { deleteStack(id: $id) { id } }`, map[string]any{"id": w.gone})
	w.roles = []role{{"admin", w.admin, true}, {"owner", w.genKey, false}, {"other generator", w.other, false},
		{"active agent", w.act.key, false}, {"inactive agent", w.idle.key, false}, {"other agent", w.lone.key, false}}
	return w
}

// newObject submits an object to stack with key and returns its id.
func (w *tenancyWorld) newObject(key, stack string) string {
	d := gql(w.t, w.s, key, `mutation($s: ID!, $y: String!) { createDeploymentObject(input: {stackId: $s, yamlContent: $y}) { id } }`,
		map[string]any{"s": stack, "y": fmt.Sprintf("n: %d\n", w.n.Add(1))})
	return str(d, "createDeploymentObject", "id")
}

// report has the agent report an event about an object and returns its id.
func (w *tenancyWorld) report(a agent, object, status string) string {
	d := gql(w.t, w.s, a.key, `mutation($d: ID!, $s: String!) { reportAgentEvent(input: {deploymentObjectId: $d, eventType: "DEPLOY", status: $s}) { id } }`,
		map[string]any{"d": object, "s": status})
	return str(d, "reportAgentEvent", "id")
}

func (w *tenancyWorld) desiredStateAgrees(t *testing.T) {
	var checks []check
	for _, r := range w.roles {
		c := w.collector(t, r.key)
		for i, a := range []agent{w.act, w.idle, w.lone} {
			want, code := query(t, w.s, r.key, `query($a: ID!) { agent(id: $a) { desiredState { id } } }`, map[string]any{"a": a.id}, "agent", "desiredState")
			id := fmt.Sprint("feed-", i)
			c.subscribe(id, `subscription($a: ID) { agentDeploymentObjects(agentId: $a) { id } }`, map[string]any{"a": a.id})
			if r.key == w.genKey || r.key == w.other {
				want, code = nil, "FORBIDDEN" // generators follow no agent's feed
			}
			checks = append(checks, check{name: fmt.Sprintf("%s, agent %d", r.name, i), c: c, id: id, field: "agentDeploymentObjects", want: want, code: code})
		}
	}
	verify(t, checks)
}

func (w *tenancyWorld) replayAgrees(t *testing.T) {
	var checks []check
	for _, r := range w.roles[3:] { // the agents
		c := w.collector(t, r.key)
		want, code := query(t, w.s, r.key, `{ deploymentObjects(first: 500) { nodes { id } } }`, nil, "deploymentObjects", "nodes")
		c.subscribe("replay", `subscription { agentDeploymentObjects(after: 0) { id } }`, nil)
		checks = append(checks, check{name: r.name + " replay", c: c, id: "replay", field: "agentDeploymentObjects", want: want, code: code})
	}
	verify(t, checks)
}

func (w *tenancyWorld) dashboardsAgree(t *testing.T) {
	var checks []check
	var events []*collector
	var pending []func(scenario map[string]bool) check // the queries, asked once the rows are in
	for _, r := range w.roles {
		c := w.collector(t, r.key)
		for id, filter := range eventFilters {
			c.subscribe(id, `subscription($f: AgentEventFilter) { agentEvents(filter: $f) { id } }`, map[string]any{"f": filter})
			pending = append(pending, func(scenario map[string]bool) check {
				want, code := query(t, w.s, r.key, `query($f: AgentEventFilter) { agentEvents(first: 500, filter: $f) { nodes { id } } }`,
					map[string]any{"f": filter}, "agentEvents", "nodes")
				return check{name: r.name + " " + id, c: c, id: id, field: "agentEvents", want: only(want, scenario), code: code, only: scenario}
			})
		}
		events = append(events, c)
		for name, st := range map[string]string{"live": w.live, "gone": w.gone, "so": w.so} {
			id := "stack " + name
			c.subscribe(id, `subscription($s: ID!) { stackDeploymentObjects(stackId: $s, after: 0) { id } }`, map[string]any{"s": st})
			pending = append(pending, func(map[string]bool) check {
				want, code := query(t, w.s, r.key, `query($s: ID!, $d: Boolean) { stack(id: $s, includeDeleted: $d) { deploymentObjects(first: 500) { nodes { id } } } }`,
					map[string]any{"s": st, "d": r.admin}, "stack", "deploymentObjects", "nodes")
				return check{name: r.name + " " + id, c: c, id: id, field: "stackDeploymentObjects", want: want, code: code}
			})
		}
	}
	w.eventsStarted(t, events)
	scenario := map[string]bool{}
	for _, e := range w.reportAll(t) {
		scenario[e] = true
	}
	w.newObject(w.genKey, w.live)
	w.newObject(w.other, w.so)
	for _, q := range pending {
		checks = append(checks, q(scenario))
	}
	verify(t, checks)
}

// eventFilters are the agentEvents filters compared, by subscription id.
var eventFilters = map[string]any{"events": nil, "successes": map[string]any{"status": "SUCCESS"}}

// reportAll reports the events the dashboards compare, and returns them.
func (w *tenancyWorld) reportAll(t *testing.T) []string {
	marker := w.latestOf(w.gone)
	return []string{
		w.report(w.act, w.latestOf(w.live), "SUCCESS"),
		w.report(w.act, marker, "SUCCESS"), // the owner's query hides it: the stack is not live
		w.report(w.act, w.latestOf(w.so), "FAILURE"),
		w.report(w.lone, w.latestOf(w.so), "SUCCESS"),
		w.idleEvent(t),
	}
}

// idleEvent is an event of the inactive agent (reported while it was
// active; psql may write one too).
func (w *tenancyWorld) idleEvent(t *testing.T) string {
	var id string
	if err := w.db.Bun.NewRaw(`INSERT INTO agent_events (agent_id, deployment_object_id, event_type, status)
		SELECT ?, id, 'DEPLOY', 'SUCCESS' FROM deployment_objects WHERE stack_id = ? AND deleted_at IS NULL
		ORDER BY sequence_id DESC LIMIT 1 RETURNING id`, w.idle.id, w.live).Scan(context.Background(), &id); err != nil {
		t.Fatal(err)
	}
	return id
}

// eventsStarted waits until every agentEvents subscription is running: it
// sends events every role sees one of (the probes are left out of the
// comparison) until each subscription has received one.
func (w *tenancyWorld) eventsStarted(t *testing.T, cs []*collector) {
	deadline := time.Now().Add(wait)
	for {
		w.reportAll(t)
		time.Sleep(100 * time.Millisecond)
		started := true
		for _, c := range cs {
			for id := range eventFilters {
				started = started && c.has(id, 1, false)
			}
		}
		if started {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the agentEvents subscriptions did not start")
		}
	}
}

// only is the members of ids in set.
func only(ids []string, set map[string]bool) []string {
	var out []string
	for _, id := range ids {
		if set[id] {
			out = append(out, id)
		}
	}
	return out
}

// latestOf is the id of the stack's latest live object (a marker included).
func (w *tenancyWorld) latestOf(stack string) string {
	var id string
	if err := w.db.Bun.NewRaw(`SELECT id FROM deployment_objects WHERE stack_id = ? AND deleted_at IS NULL
		ORDER BY sequence_id DESC LIMIT 1`, stack).Scan(context.Background(), &id); err != nil {
		w.t.Fatal(err)
	}
	return id
}

// query runs a query over HTTP and returns the ids of the nodes at path
// (sorted), or its error code.
func query(t *testing.T, s *server, key, q string, vars map[string]any, path ...string) ([]string, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": q, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.url+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r struct {
		Data   map[string]any
		Errors []struct{ Extensions struct{ Code string } }
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%s: %s", q, raw)
	}
	if len(r.Errors) > 0 {
		return nil, r.Errors[0].Extensions.Code
	}
	var v any = r.Data
	for _, p := range path {
		v = v.(map[string]any)[p]
	}
	var ids []string
	for _, n := range v.([]any) {
		ids = append(ids, n.(map[string]any)["id"].(string))
	}
	slices.Sort(ids)
	return ids, ""
}

// check: the subscription id on c must end up with exactly want (or fail
// with code, as the query did).
type check struct {
	name  string
	c     *collector
	id    string
	field string
	want  []string
	code  string
	only  map[string]bool // compare these rows only (nil: all)
}

// verify waits until every subscription has as many rows as its query (or
// its error), gives extra rows a moment to show, and compares.
func verify(t *testing.T, checks []check) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for _, ch := range checks {
		for len(ch.got()) < len(ch.want) && (ch.code == "" || ch.c.code(ch.id) == "") {
			if time.Now().After(deadline) {
				t.Fatalf("%s: got %v %q; the query shows %v %q", ch.name, ch.got(), ch.c.code(ch.id), ch.want, ch.code)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond)
	for _, ch := range checks {
		got, code := ch.got(), ch.c.code(ch.id)
		if code != ch.code || !slices.Equal(got, ch.want) {
			t.Errorf("%s: subscription %v %q; the query %v %q", ch.name, got, code, ch.want, ch.code)
		}
	}
}

// got is the rows the subscription received that the check compares.
func (ch check) got() []string {
	ids := ch.c.ids(ch.id, ch.field)
	if ch.only == nil {
		return ids
	}
	return only(ids, ch.only)
}

// collector reads one websocket and keeps every message by subscription.
type collector struct {
	*ws
	mu   sync.Mutex
	msgs map[string][]wsMsg
}

func (w *tenancyWorld) collector(t *testing.T, key string) *collector {
	c := &collector{ws: dial(t, w.s, key, transportWS), msgs: map[string][]wsMsg{}}
	go func() {
		for m := range c.ws.msgs {
			c.mu.Lock()
			c.msgs[m.ID] = append(c.msgs[m.ID], m)
			c.mu.Unlock()
		}
	}()
	return c
}

// has reports whether id has n rows, or (failed) an error.
func (c *collector) has(id string, n int, failed bool) bool {
	if failed {
		return c.code(id) != ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs[id]) >= n
}

// ids is the sorted ids of the rows id received.
func (c *collector) ids(id, field string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.msgs[id] {
		if m.Type == "next" {
			if v := str(decode(m), field, "id"); v != "" && v != "<nil>" {
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return out
}

// code is the error code id ended with, if any.
func (c *collector) code(id string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.msgs[id] {
		var errs []struct{ Extensions struct{ Code string } }
		switch m.Type {
		case "error":
			_ = json.Unmarshal(m.Payload, &errs)
		case "next":
			var r struct {
				Errors []struct{ Extensions struct{ Code string } }
			}
			_ = json.Unmarshal(m.Payload, &r)
			errs = r.Errors
		}
		if len(errs) > 0 {
			return errs[0].Extensions.Code
		}
	}
	return ""
}
