package api_test

import (
	"context"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/dbtest"
)

// statementCounter is a bun query hook that records every statement.
type statementCounter struct {
	mu    sync.Mutex
	on    bool
	stmts []string
}

func (c *statementCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context {
	return ctx
}

func (c *statementCounter) AfterQuery(_ context.Context, e *bun.QueryEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.on {
		c.stmts = append(c.stmts, e.Query)
	}
}

func (c *statementCounter) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on, c.stmts = true, nil
}

func (c *statementCounter) stop() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	return c.stmts
}

// seedDashboard fills a database with gens generators × stacks stacks ×
// objs deployment objects × events events (one ACTIVE agent reporting),
// plus one label and one annotation per stack, in a few set-based statements.
func seedDashboard(t testing.TB, db *bun.DB, gens, stacks, objs, events int) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO generators (name) SELECT 'gen-' || i FROM generate_series(1, ?) AS i`,
		`INSERT INTO stacks (name, generator_id) SELECT 'stack-' || j, g.id FROM generators AS g, generate_series(1, ?) AS j`,
		`INSERT INTO stack_labels (stack_id, label) SELECT id, 'prod' FROM stacks WHERE ? > 0`,
		`INSERT INTO stack_annotations (stack_id, key, value) SELECT id, 'team', 'core' FROM stacks WHERE ? > 0`,
		`INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
			SELECT s.id, c, encode(sha256(convert_to(c, 'UTF8')), 'hex')
			FROM stacks AS s, generate_series(1, ?) AS k,
			LATERAL (SELECT 'kind: ConfigMap\nmetadata:\n  name: ' || s.name || '\ndata:\n  version: "' || k || '"\n' AS c) AS x
			ORDER BY s.id, k`,
		`INSERT INTO agents (name, cluster_name, status) SELECT 'agent', 'cluster', 'ACTIVE' WHERE ? > 0`,
		`INSERT INTO agent_events (agent_id, deployment_object_id, event_type, status, message)
			SELECT a.id, d.id, 'DEPLOY', 'SUCCESS', 'applied ' || n FROM agents AS a, deployment_objects AS d, generate_series(1, ?) AS n`,
	} {
		var n int
		switch {
		case strings.HasPrefix(q, "INSERT INTO generators"):
			n = gens
		case strings.HasPrefix(q, "INSERT INTO stacks"):
			n = stacks
		case strings.HasPrefix(q, "INSERT INTO deployment_objects"):
			n = objs
		case strings.HasPrefix(q, "INSERT INTO agent_events"):
			n = events
		default:
			n = 1
		}
		if _, err := db.ExecContext(ctx, q, n); err != nil {
			t.Fatalf("seed: %v\n%s", err, q)
		}
	}
}

// dashboardQuery is the nested read a dashboard makes (DESIGN §7).
const dashboardQuery = `query Dashboard($g: Int!, $s: Int!, $o: Int!, $e: Int!) {
  generators(first: $g) { totalCount pageInfo { hasNextPage endCursor } nodes {
    id name isActive lastActiveAt
    stacks(first: $s) { totalCount nodes {
      id name labels annotations { key value } generator { id name }
      deploymentObjects(first: $o) { totalCount edges { cursor node {
        id sequenceId yamlChecksum isDeletionMarker submittedAt
        events(first: $e) { totalCount nodes { id eventType status message createdAt agent { id name clusterName } } }
      } } }
    } }
  } }
}`

func dashboardVars(g, s, o, e int) map[string]any {
	return map[string]any{"g": g, "s": s, "o": o, "e": e}
}

// The dashboard query costs a number of statements set by its shape
// (depth and distinct nested fields), never by its rows: 20 × 10 × 10 × 5
// rows cost exactly what 1 × 1 × 1 × 1 costs. So it does on both read
// paths: gqlgen's executor with its loaders (statements seen by a bun
// query hook), and the read planner (which sends its statements through
// pgx itself and counts them in its metrics), whose statements of one
// level go in one round trip.
func TestDashboardStatementsBoundedByDepth(t *testing.T) {
	t.Parallel()
	for _, planner := range []bool{true, false} {
		t.Run(map[bool]string{true: "planner", false: "executor"}[planner], func(t *testing.T) {
			t.Parallel()
			testDashboardStatements(t, api.Config{DisableReadPlanner: !planner})
		})
	}
}

func testDashboardStatements(t *testing.T, cfg api.Config) {
	count := func(g, s, o, e int) (int, map[string]any, []string) {
		db := dbtest.New(t)
		seedDashboard(t, db.Bun, g, s, o, e)
		var adminKey string
		env := setupOn(t, db, cfg, &adminKey)
		c := &statementCounter{}
		db.Bun.AddQueryHook(c)
		planned, batches := env.metric(t, "brokkr_read_planner_statements_total"), env.metric(t, "brokkr_read_planner_batches_total")
		c.start()
		d := env.ok(t, adminKey, dashboardQuery, dashboardVars(g, s, o, e))
		stmts := c.stop()
		planned = env.metric(t, "brokkr_read_planner_statements_total") - planned
		batches = env.metric(t, "brokkr_read_planner_batches_total") - batches
		if cfg.DisableReadPlanner == (planned > 0) || (planned > 0 && len(stmts) > 0) {
			t.Fatalf("planner off: %v; %v planned statements, %d through bun", cfg.DisableReadPlanner, planned, len(stmts))
		}
		if planned > 0 && batches != 5 {
			t.Fatalf("%v planned statements in %v round trips, want one round trip per level (5)", planned, batches)
		}
		return len(stmts) + int(planned), d, stmts
	}
	small, _, smallStmts := count(1, 1, 1, 1)
	big, d, bigStmts := count(20, 10, 10, 5)

	// The answer really holds 20 × 10 × 10 × 5 rows.
	gens := list(d, "generators", "nodes")
	if len(gens) != 20 {
		t.Fatalf("%d generators", len(gens))
	}
	events := 0
	for _, g := range gens {
		stacks := list(g, "stacks", "nodes")
		if len(stacks) != 10 {
			t.Fatalf("%d stacks", len(stacks))
		}
		for _, s := range stacks {
			objs := list(s, "deploymentObjects", "edges")
			if len(objs) != 10 || str(s, "generator", "id") != str(g, "id") || len(list(s, "labels")) != 1 {
				t.Fatalf("stack %v", s)
			}
			for _, o := range objs {
				es := list(o, "node", "events", "nodes")
				events += len(es)
				if len(es) != 5 || str(es[0], "agent", "name") != "agent" {
					t.Fatalf("object %v", o)
				}
			}
		}
	}
	if events != 20*10*10*5 {
		t.Fatalf("%d events", events)
	}
	t.Logf("statements: %d for 1×1×1×1, %d for 20×10×10×5 (%d events)", small, big, events)
	// One statement for the key, and per nesting level at most a page and
	// a count; plus one per parent edge (generator, agent) and per leaf
	// list (labels, annotations).
	const bound = 1 + 2*4 + 2 + 2
	if big != small || big > bound {
		t.Fatalf("statements: %d (small) vs %d (big), bound %d\nsmall:\n%s\nbig:\n%s",
			small, big, bound, heads(smallStmts), heads(bigStmts))
	}
}

// metric is the value of a counter on the server's /metrics (0 when absent).
func (e *env) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := e.srv.Client().Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(string(raw))
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// heads lists statements one per line, each cut to its first 160 bytes.
func heads(stmts []string) string {
	var b strings.Builder
	for _, s := range stmts {
		s = strings.Join(strings.Fields(s), " ")
		if len(s) > 160 {
			s = s[:160] + "…"
		}
		b.WriteString(s + "\n")
	}
	return b.String()
}

// setupOn is setup over an existing database; it returns the admin key
// through key.
func setupOn(t *testing.T, db *dbtest.DB, cfg api.Config, key *string) *env {
	t.Helper()
	e := setupDB(t, db, func(*env) api.Config { return cfg })
	*key = e.admin
	return e
}
