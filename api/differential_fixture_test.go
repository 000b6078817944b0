package api_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/models"
)

// diffFixture is the database the differential test reads (differential_test.go):
// every kind of row the read path serves, in every state it can be in, with
// deterministic content (names, YAML, labels, messages; ids and timestamps
// are the database's). It is written through models, as the API would, and,
// for the one state no mutation reaches (a soft-deleted event of a live
// agent), with SQL as an operator's psql would.
type diffFixture struct {
	ids  map[string]uuid.UUID // "gen:alpha", "stack:alpha/web", "obj:alpha/web#2", "agent:edge-1", "event:3", "target:edge-1>alpha/web"
	keys map[string]string    // role name → API key

	// Ids by kind, in creation order, for the random queries' arguments.
	generators, stacks, objects, agents, events, targets []uuid.UUID

	fake bool // made up (fakeDiffFixture): any name has an id
}

func (f *diffFixture) id(name string) string {
	id, ok := f.ids[name]
	if !ok && f.fake {
		return uuid.NewSHA1(uuid.NameSpaceOID, []byte(name)).String()
	}
	if !ok {
		panic("diffFixture: no " + name)
	}
	return id.String()
}

// fakeDiffFixture stands in for the database's fixture where only the
// corpus's documents matter (TestDifferentialCorpusCoverage).
func fakeDiffFixture() *diffFixture {
	return &diffFixture{ids: map[string]uuid.UUID{}, keys: map[string]string{}, fake: true}
}

// diffRoles are the callers every corpus query is asked as: the admin, every
// generator that has a key (epsilon owns nothing), an ACTIVE agent and an
// INACTIVE one (which sees itself but no stack).
var diffRoles = []string{"admin", "alpha", "beta", "epsilon", "edge-1", "idle"}

type seedStack struct {
	gen, name   string
	description *string
	labels      []string
	annotations [][2]string
	objects     []string // YAML, submitted in order
}

func ptr[T any](v T) *T { return &v }

// Contents with what JSON writers treat specially: quotes, backslashes,
// control characters, HTML-sensitive characters, non-ASCII, U+2028.
var diffSeedStacks = []seedStack{
	{gen: "alpha", name: "web", description: ptr("Front end «main»"), labels: []string{"prod", "eu", "web"},
		annotations: [][2]string{{"team", "core"}, {"tier", "1"}},
		objects: []string{
			"kind: ConfigMap\nmetadata:\n  name: web\ndata:\n  v: \"1\"\n",
			"kind: ConfigMap\nmetadata:\n  name: web\ndata:\n  v: \"2\"\n  html: \"<b>bold</b> & co\"\n",
			"kind: ConfigMap\nmetadata:\n  name: web\ndata:\n  v: \"3\"\n---\nkind: Secret\nmetadata:\n  name: web\n",
			"kind: ConfigMap\nmetadata:\n  name: web\ndata:\n  v: \"4\"\n  path: 'C:\\temp\\x'\n",
			"kind: ConfigMap\nmetadata:\n  name: web\ndata:\n  v: \"5\"\n  note: \"tab\\there, line\\u2028sep\"\n",
		}},
	{gen: "alpha", name: "api", labels: []string{"prod"}, annotations: [][2]string{{"team", "platform"}},
		objects: []string{"kind: Service\nmetadata:\n  name: api\n", "kind: Service\nmetadata:\n  name: api\nspec:\n  port: 80\n",
			"kind: Service\nmetadata:\n  name: api\nspec:\n  port: 8080\n"}},
	{gen: "alpha", name: "db", description: ptr("")},
	{gen: "alpha", name: "old", labels: []string{"legacy"}, annotations: [][2]string{{"team", "core"}},
		objects: []string{"kind: Job\nmetadata:\n  name: old\n", "kind: Job\nmetadata:\n  name: old\n  labels:\n    v: \"2\"\n"}},
	{gen: "alpha", name: "phoenix", labels: []string{"prod", "eu"},
		objects: []string{"kind: Deployment\nmetadata:\n  name: phoenix\n", "kind: Deployment\nmetadata:\n  name: phoenix\nspec:\n  replicas: 3\n"}},
	{gen: "beta", name: "web", description: ptr("Beta's \"web\" \\ stack"), labels: []string{"prod", "us"},
		annotations: [][2]string{{"team", "core"}, {"owner", "Zoë\"zed\"<z@example.com>&\\"}},
		objects: []string{"kind: ConfigMap\nmetadata:\n  name: bweb\ndata:\n  greeting: \"héllo wörld ☃\"\n",
			"kind: ConfigMap\nmetadata:\n  name: bweb\ndata:\n  emoji: \"🚀\"\n",
			"kind: ConfigMap\nmetadata:\n  name: bweb\ndata:\n  ctl: \"bell\\a esc\\e nul-free\"\n",
			"kind: ConfigMap\nmetadata:\n  name: bweb\n"}},
	{gen: "beta", name: "büro \"q\" <x> \\ \u2028 🚀", labels: []string{"ünï", "<b>"}, annotations: [][2]string{{"ключ", "値"}},
		objects: []string{"kind: ConfigMap\nmetadata:\n  name: buero\n"}},
	{gen: "beta", name: "cache", labels: []string{"staging"}, annotations: [][2]string{{"team", "core"}, {"tier", "2"}},
		objects: []string{"kind: StatefulSet\nmetadata:\n  name: cache\n", "kind: StatefulSet\nmetadata:\n  name: cache\nspec:\n  replicas: 2\n"}},
	{gen: "beta", name: "queue", labels: []string{"staging", "eu"}, objects: []string{"kind: Deployment\nmetadata:\n  name: queue\n"}},
	{gen: "gamma", name: "legacy", description: ptr("owned by an inactive generator"), labels: []string{"prod"},
		objects: []string{"kind: CronJob\nmetadata:\n  name: legacy\n"}},
	{gen: "delta", name: "a", labels: []string{"prod"}, objects: []string{"kind: Pod\nmetadata:\n  name: da1\n", "kind: Pod\nmetadata:\n  name: da2\n"}},
	{gen: "delta", name: "b", objects: []string{"kind: Pod\nmetadata:\n  name: db1\n"}},
}

type seedAgent struct {
	name, cluster string
	labels        []string
	annotations   [][2]string
	targets       []string // "gen/stack"
}

var diffSeedAgents = []seedAgent{
	{name: "edge-1", cluster: "c-eu", labels: []string{"edge", "gpu"}, annotations: [][2]string{{"region", "eu"}, {"rack", "r1"}},
		targets: []string{"alpha/web", "alpha/api", "beta/web", "alpha/old", "gamma/legacy"}},
	{name: "edge-2", cluster: "c-us", labels: []string{"edge"}, annotations: [][2]string{{"region", "us"}},
		targets: []string{"beta/cache", "beta/queue", "alpha/phoenix", "delta/a"}},
	{name: "idle", cluster: "c-eu", labels: []string{"edge"}, annotations: [][2]string{{"region", "eu"}},
		targets: []string{"alpha/web", "beta/cache"}},
	{name: "gone", cluster: "c-x", labels: []string{"doomed"}, targets: []string{"alpha/api", "beta/web"}},
	{name: "fresh", cluster: "c-new"},
}

// seedDiffFixture writes the fixture; see diffSeedStacks and diffSeedAgents
// for the content and the comments below for the states.
func seedDiffFixture(t *testing.T, db *bun.DB, adminKey string) *diffFixture {
	t.Helper()
	ctx := context.Background()
	f := &diffFixture{ids: map[string]uuid.UUID{}, keys: map[string]string{"admin": adminKey}}
	admin := models.AdminScope
	// Sequence ids past 2^53, where a float64 would lose them.
	if _, err := db.NewRaw(`SELECT setval('deployment_objects_sequence_id_seq', 9007199254740990)`).Exec(ctx); err != nil {
		t.Fatalf("seed sequence: %v", err)
	}
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("seed %s: %v", what, err)
		}
	}

	// Generators: alpha and beta (one with its own rate limit), gamma
	// (deactivated: its key is refused), delta (soft-deleted below, with
	// its stacks), epsilon (owns nothing).
	for _, g := range []struct {
		name string
		desc *string
		rate *int32
	}{{"alpha", ptr("Alpha CI — «main» pipeline"), ptr(int32(100_000))}, {"beta", nil, nil},
		{"gamma", ptr("inactive"), ptr(int32(5))}, {"delta", ptr("deleted"), nil}, {"epsilon", ptr("<empty> & idle"), nil}} {
		gk, err := models.CreateGenerator(ctx, db, admin, models.CreateGeneratorInput{Name: g.name, Description: g.desc, RateLimitPerMinute: g.rate})
		check("generator "+g.name, err)
		f.ids["gen:"+g.name] = gk.Generator.ID
		f.keys[g.name] = gk.APIKey
		f.generators = append(f.generators, gk.Generator.ID)
	}
	seedDiffStacks(t, ctx, db, f)
	seedDiffAgents(t, ctx, db, f)
	seedDiffStates(t, ctx, db, f)

	// Reads must not write. The one write a read makes is a generator's
	// last_active_at (auth.Activity, at most once per 10 s per process, and
	// only when the stored value is over 5 s old): each server of the test
	// keeps its own clock of it, so the second server could refresh what
	// the first just read. A value in the future is never over 5 s old.
	_, err := db.NewRaw(`UPDATE generators SET last_active_at = now() + interval '1 day' WHERE pak_hash IS NOT NULL`).Exec(ctx)
	check("last_active_at", err)

	// Targets, in creation order (their ids are not in f.ids by kind yet).
	var targets []uuid.UUID
	check("targets", db.NewRaw(`SELECT id FROM agent_targets ORDER BY created_at, id`).Scan(ctx, &targets))
	f.targets = targets
	return f
}

// seedDiffStates brings the fixture into the states no plain creation
// reaches, in an order the cascades allow, and gives some rows timestamps
// with a telling number of fractional digits.
func seedDiffStates(t *testing.T, ctx context.Context, db *bun.DB, f *diffFixture) {
	t.Helper()
	admin := models.AdminScope
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("seed %s: %v", what, err)
		}
	}
	gen := func(name string) uuid.UUID { return f.ids["gen:"+name] }
	stack := func(name string) uuid.UUID { return f.ids["stack:"+name] }
	agent := func(name string) uuid.UUID { return f.ids["agent:"+name] }
	_, err := models.DeleteDeploymentObject(ctx, db, admin, f.ids["obj:alpha/web#2"])
	check("delete object", err)
	web := f.ids["obj:alpha/web#1"]
	rb, err := models.RollbackStack(ctx, db, models.GeneratorScope(gen("alpha")), stack("alpha/web"), web)
	check("rollback", err)
	f.objects = append(f.objects, rb.ID)
	f.ids["obj:alpha/web#6"] = rb.ID
	_, err = models.DeleteStack(ctx, db, models.GeneratorScope(gen("alpha")), stack("alpha/old"), false)
	check("delete stack", err)
	_, err = models.DeleteStack(ctx, db, admin, stack("alpha/phoenix"), false)
	check("delete phoenix", err)
	_, err = models.RestoreStack(ctx, db, admin, stack("alpha/phoenix"))
	check("restore phoenix", err)
	_, err = models.DeleteStack(ctx, db, models.GeneratorScope(gen("beta")), stack("beta/queue"), false)
	check("delete queue", err)
	_, err = models.DeleteGenerator(ctx, db, admin, gen("delta"), false)
	check("delete delta", err)
	_, err = models.UpdateGenerator(ctx, db, admin, models.UpdateGeneratorInput{ID: gen("gamma"), IsActive: ptr(false)})
	check("deactivate gamma", err)
	_, err = models.UpdateAgent(ctx, db, admin, models.UpdateAgentInput{ID: agent("idle"), Status: ptr(models.AgentStatusInactive)})
	check("deactivate idle", err)
	_, err = models.DeleteAgent(ctx, db, admin, agent("gone"), false)
	check("delete gone", err)
	_, err = models.AgentHeartbeat(ctx, db, models.AgentScope(agent("edge-1")))
	check("heartbeat", err)
	// A soft-deleted event of a live agent: no mutation does this, an
	// operator's psql may.
	_, err = db.NewRaw(`UPDATE agent_events SET deleted_at = now() WHERE id = ?`, f.ids["event:edge-1#2"]).Exec(ctx)
	check("delete event", err)

	// Timestamps with a whole second, a tenth, a microsecond: how many
	// fractional digits a time is written with depends on them.
	for _, q := range []string{
		`UPDATE generators SET created_at = '2024-02-29T12:00:00Z' WHERE name = 'epsilon'`,
		`UPDATE agents SET created_at = '2024-02-29T12:00:00.1Z', last_heartbeat = '2024-03-01T00:00:00.000001Z' WHERE name = 'fresh'`,
		`UPDATE agent_events SET created_at = '2024-03-01T10:00:00.5Z' WHERE id = '` + f.id("event:edge-1#1") + `'`,
		`UPDATE stacks SET created_at = '2023-12-31T23:59:59.999999Z' WHERE id = '` + f.id("stack:alpha/db") + `'`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("seed timestamps: %v\n%s", err, q)
		}
	}

}

func seedDiffStacks(t *testing.T, ctx context.Context, db *bun.DB, f *diffFixture) {
	t.Helper()
	for _, s := range diffSeedStacks {
		scope := models.GeneratorScope(f.ids["gen:"+s.gen])
		in := models.CreateStackInput{Name: s.name, Description: s.description, Labels: s.labels}
		for _, a := range s.annotations {
			in.Annotations = append(in.Annotations, &models.AnnotationInput{Key: a[0], Value: a[1]})
		}
		st, err := models.CreateStack(ctx, db, scope, in)
		if err != nil {
			t.Fatalf("seed stack %s/%s: %v", s.gen, s.name, err)
		}
		name := s.gen + "/" + s.name
		f.ids["stack:"+name] = st.ID
		f.stacks = append(f.stacks, st.ID)
		for i, y := range s.objects {
			d, err := models.CreateDeploymentObject(ctx, db, scope, models.CreateDeploymentObjectInput{StackID: st.ID, YamlContent: y})
			if err != nil {
				t.Fatalf("seed object %s#%d: %v", name, i+1, err)
			}
			f.ids[fmt.Sprintf("obj:%s#%d", name, i+1)] = d.ID
			f.objects = append(f.objects, d.ID)
		}
	}
}

// eventMessages cycle through the events' messages (nil: no message).
var eventMessages = []*string{ptr("applied"), nil, ptr("failed: \"ImagePullBackOff\"\n\tat node-3"), ptr(""),
	ptr("ünïcödé ✓ <ok> & done"), ptr("back\\slash / solidus \u2028 \u0001")}

func seedDiffAgents(t *testing.T, ctx context.Context, db *bun.DB, f *diffFixture) {
	t.Helper()
	admin := models.AdminScope
	n := 0
	for _, a := range diffSeedAgents {
		in := models.CreateAgentInput{Name: a.name, ClusterName: a.cluster, Labels: a.labels}
		for _, an := range a.annotations {
			in.Annotations = append(in.Annotations, &models.AnnotationInput{Key: an[0], Value: an[1]})
		}
		ak, err := models.CreateAgent(ctx, db, admin, in)
		if err != nil {
			t.Fatalf("seed agent %s: %v", a.name, err)
		}
		id := ak.Agent.ID
		f.ids["agent:"+a.name] = id
		f.keys[a.name] = ak.APIKey
		f.agents = append(f.agents, id)
		if a.name == "fresh" {
			continue // INACTIVE, as created
		}
		if _, err := models.UpdateAgent(ctx, db, admin, models.UpdateAgentInput{ID: id, Status: ptr(models.AgentStatusActive)}); err != nil {
			t.Fatalf("seed activate %s: %v", a.name, err)
		}
		for _, s := range a.targets {
			tg, err := models.AddAgentTarget(ctx, db, admin, id, f.ids["stack:"+s])
			if err != nil {
				t.Fatalf("seed target %s>%s: %v", a.name, s, err)
			}
			f.ids["target:"+a.name+">"+s] = tg.ID
		}
		// Events: the agent reports on every other object of the stacks it
		// targets, cycling through types, statuses and messages.
		for _, s := range a.targets {
			for i := 1; ; i++ {
				obj, ok := f.ids[fmt.Sprintf("obj:%s#%d", s, i)]
				if !ok {
					break
				}
				if (i+len(a.name))%2 == 1 && i != 1 {
					continue
				}
				n++
				e, err := models.ReportAgentEvent(ctx, db, models.AgentScope(id), models.ReportAgentEventInput{
					DeploymentObjectID: obj, EventType: []string{"DEPLOY", "HEALTH", "DELETE"}[n%3],
					Status: []string{"SUCCESS", "FAILURE", "PENDING", "SUCCESS"}[n%4], Message: eventMessages[n%len(eventMessages)]})
				if err != nil {
					t.Fatalf("seed event %s on %s#%d: %v", a.name, s, i, err)
				}
				f.ids[fmt.Sprintf("event:%s#%d", a.name, n)] = e.ID
				f.events = append(f.events, e.ID)
			}
		}
	}
}
