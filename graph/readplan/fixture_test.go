package readplan_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/models"
)

// fixture is one database served twice: by the planner and by gqlgen's
// executor alone (DisableReadPlanner), with a key per role.
type fixture struct {
	db                *dbtest.DB
	planned, executor *httptest.Server
	keys              map[string]string // admin, genA, genB, agent1, agent2
	ids               map[string]uuid.UUID
}

// newFixture builds generators A, B and a deleted C; stacks A1 (labels,
// annotations), A2, a deleted A3, B1; objects in each (a deleted one, the
// deletion markers); agents 1 (ACTIVE, targets A1 and B1), 2 (INACTIVE,
// targets A2) and a deleted 3; events of agents 1 and 2.
func newFixture(t *testing.T, cfg api.Config) *fixture {
	t.Helper()
	ctx := context.Background()
	db := dbtest.New(t)
	f := &fixture{db: db, keys: map[string]string{}, ids: map[string]uuid.UUID{}}
	admin, _, err := models.EnsureAdminKey(ctx, db.Bun)
	must(t, err)
	f.keys["admin"] = admin
	a := models.AdminScope
	gen := func(name string) uuid.UUID {
		g, err := models.CreateGenerator(ctx, db.Bun, a, models.CreateGeneratorInput{Name: name})
		must(t, err)
		f.keys[name] = g.APIKey
		return g.Generator.ID
	}
	for _, n := range []string{"genA", "genB", "genC"} {
		f.ids[n] = gen(n)
	}
	stack := func(name, g string, labels []string, anns []*models.AnnotationInput) {
		gid := f.ids[g]
		s, err := models.CreateStack(ctx, db.Bun, a, models.CreateStackInput{GeneratorID: &gid, Name: name, Labels: labels, Annotations: anns})
		must(t, err)
		f.ids[name] = s.ID
		for i := range 3 {
			d, err := models.CreateDeploymentObject(ctx, db.Bun, a, models.CreateDeploymentObjectInput{StackID: s.ID,
				YamlContent: "kind: ConfigMap\nmetadata:\n  name: \"" + name + "\"\ndata:\n  v: \"" + string(rune('1'+i)) + "\"\n"})
			must(t, err)
			f.ids[name+"/"+string(rune('1'+i))] = d.ID
		}
	}
	stack("A1", "genA", []string{"prod", "eu"}, []*models.AnnotationInput{{Key: "team", Value: "core"}, {Key: "tier", Value: "1"}})
	stack("A2", "genA", []string{"prod"}, nil)
	stack("A3", "genA", nil, nil)
	stack("B1", "genB", []string{"dev"}, []*models.AnnotationInput{{Key: "team", Value: "edge"}})
	stack("C1", "genC", nil, nil)
	_, err = models.DeleteDeploymentObject(ctx, db.Bun, a, f.ids["A1/2"])
	must(t, err)
	_, err = models.DeleteStack(ctx, db.Bun, a, f.ids["A3"], false)
	must(t, err)
	_, err = models.DeleteGenerator(ctx, db.Bun, a, f.ids["genC"], false)
	must(t, err)
	f.agents(t, ctx, db.Bun)
	h := func(disable bool) *httptest.Server {
		c := cfg
		c.DB, c.Logger, c.DisableReadPlanner = db.Bun, slog.New(slog.NewTextHandler(io.Discard, nil)), disable
		c.DefaultRateLimitPerMinute = -1
		hh, err := api.New(c)
		must(t, err)
		srv := httptest.NewServer(hh)
		t.Cleanup(srv.Close)
		return srv
	}
	f.planned, f.executor = h(false), h(true)
	return f
}

func (f *fixture) agents(t *testing.T, ctx context.Context, db bun.IDB) {
	a := models.AdminScope
	agent := func(name string, active bool, targets ...string) {
		ag, err := models.CreateAgent(ctx, db, a, models.CreateAgentInput{Name: name, ClusterName: "c-" + name,
			Labels: []string{"edge", name}, Annotations: []*models.AnnotationInput{{Key: "region", Value: "eu"}}})
		must(t, err)
		f.keys[name], f.ids[name] = ag.APIKey, ag.Agent.ID
		if active {
			st := models.AgentStatusActive
			_, err = models.UpdateAgent(ctx, db, a, models.UpdateAgentInput{ID: ag.Agent.ID, Status: &st})
			must(t, err)
		}
		for _, s := range targets {
			_, err := models.AddAgentTarget(ctx, db, a, ag.Agent.ID, f.ids[s])
			must(t, err)
		}
	}
	agent("agent1", true, "A1", "B1", "A2")
	agent("agent2", false, "A2")
	agent("agent3", true, "A1")
	for _, ev := range []struct{ agent, obj, status string }{
		{"agent1", "A1/1", "SUCCESS"}, {"agent1", "A1/3", "FAILURE"}, {"agent1", "B1/1", "SUCCESS"},
		{"agent1", "A2/3", "SUCCESS"}, {"agent3", "A1/3", "SUCCESS"},
	} {
		msg := "applied " + ev.obj + "\t\"quoted\""
		_, err := models.ReportAgentEvent(ctx, db, models.AgentScope(f.ids[ev.agent]), models.ReportAgentEventInput{
			DeploymentObjectID: f.ids[ev.obj], EventType: "DEPLOY", Status: ev.status, Message: &msg})
		must(t, err)
	}
	_, err := models.RemoveAgentTarget(ctx, db, a, f.ids["agent1"], f.ids["A2"])
	must(t, err)
	_, err = models.DeleteAgent(ctx, db, a, f.ids["agent3"], false)
	must(t, err)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// post sends a query with key to srv; it returns the status and the body.
func post(t *testing.T, srv *httptest.Server, key, query string, vars map[string]any) (int, []byte) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	must(t, err)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/query", bytes.NewReader(body))
	must(t, err)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := srv.Client().Do(req)
	must(t, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp.StatusCode, out
}

// same runs a query through both servers and fails unless the answers
// are the same bytes, the order of several errors aside (the executor
// resolves siblings concurrently: its order of their errors varies from
// run to run); it returns the planner's answer. Which fields share a
// loader's batch is a matter of timing in the executor too, so a planner
// answer that is not the executor's first is checked against a few more.
func (f *fixture) same(t *testing.T, role, query string, vars map[string]any) []byte {
	t.Helper()
	ps, pb := post(t, f.planned, f.keys[role], query, vars)
	es, eb := post(t, f.executor, f.keys[role], query, vars)
	for range 5 {
		if ps == es && equalAnswers(t, pb, eb) {
			break
		}
		es, eb = post(t, f.executor, f.keys[role], query, vars)
	}
	if ps != es || !equalAnswers(t, pb, eb) {
		t.Errorf("%s: answers differ\nquery: %s\nvars: %v\nplanner  (%d): %s\nexecutor (%d): %s", role, query, vars, ps, pb, es, eb)
	}
	return pb
}

// equalAnswers compares two answers: the same bytes, or the same bytes
// but for the order of their errors.
func equalAnswers(t *testing.T, a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	type answer struct {
		Errors []json.RawMessage `json:"errors"`
		Data   json.RawMessage   `json:"data"`
	}
	var x, y answer
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil || len(x.Errors) < 2 {
		return false
	}
	sorted := func(es []json.RawMessage) []string {
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = string(e)
		}
		slices.Sort(out)
		return out
	}
	// The rest of the answer, errors in the planner's order.
	y2 := bytes.Replace(b, []byte(joinErrors(y.Errors)), []byte(joinErrors(x.Errors)), 1)
	return slices.Equal(sorted(x.Errors), sorted(y.Errors)) && bytes.Equal(a, y2)
}

func joinErrors(es []json.RawMessage) string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = string(e)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// metric reads one counter of the planned server's /metrics (0 when absent).
func (f *fixture) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := f.planned.Client().Get(f.planned.URL + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	must(t, err)
	sum := 0.0
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			must(t, err)
			sum += v
		}
	}
	return sum
}

// allPlanned fails unless the planner answered every query so far.
func (f *fixture) allPlanned(t *testing.T) {
	t.Helper()
	if n := f.metric(t, "brokkr_read_planner_fallbacks_total"); n != 0 || f.metric(t, "brokkr_read_planner_planned_total") == 0 {
		t.Errorf("fallbacks: %v, planned: %v", n, f.metric(t, "brokkr_read_planner_planned_total"))
	}
}
