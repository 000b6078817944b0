package models_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// batchFixture: 4 generators with 0, 1, 3 and 5 stacks; every stack has as
// many objects as its index + 1; every object has 2 events by one agent.
type batchFixture struct {
	gens     []uuid.UUID
	stacks   map[uuid.UUID][]uuid.UUID // by generator
	objects  map[uuid.UUID][]uuid.UUID // by stack, in creation order
	allObjs  []uuid.UUID
	agent    uuid.UUID
	other    uuid.UUID
	genScope models.Scope // the generator with 5 stacks
}

func newBatchFixture(e *env) *batchFixture {
	f := &batchFixture{stacks: map[uuid.UUID][]uuid.UUID{}, objects: map[uuid.UUID][]uuid.UUID{}}
	a, as := e.agent("a", true)
	o, _ := e.agent("o", true)
	f.agent, f.other = a.ID, o.ID
	for gi, ns := range []int{0, 1, 3, 5} {
		g, _, gs := e.generator(fmt.Sprintf("g%d", gi))
		f.gens = append(f.gens, g.ID)
		if ns == 5 {
			f.genScope = gs
		}
		for si := 0; si < ns; si++ {
			s := e.stack(g.ID, fmt.Sprintf("s%d", si), fmt.Sprintf("l%d", si%2))
			f.stacks[g.ID] = append(f.stacks[g.ID], s.ID)
			e.target(a.ID, s.ID)
			for oi := 0; oi <= si; oi++ {
				d := e.object(s.ID, fmt.Sprintf("o: %d", oi))
				f.objects[s.ID] = append(f.objects[s.ID], d.ID)
				f.allObjs = append(f.allObjs, d.ID)
				for k := 0; k < 2; k++ {
					must[*models.AgentEvent](e.t)(models.ReportAgentEvent(e.ctx, e.db, as, models.ReportAgentEventInput{
						DeploymentObjectID: d.ID, EventType: "DEPLOY", Status: fmt.Sprint(k)}))
				}
			}
		}
	}
	return f
}

// inOneStatement runs f, which must succeed with exactly one SQL statement.
func inOneStatement[T any](e *env, name string, f func() (T, error)) T {
	e.t.Helper()
	var v T
	var err error
	if n := e.statements(func() { v, err = f() }); err != nil || n != 1 {
		e.t.Fatalf("%s: %d statements, error %v; want 1 statement", name, n, err)
	}
	return v
}

func TestBatchPagesAreOneStatement(t *testing.T) {
	e := setup(t)
	f := newBatchFixture(e)
	stackPages := inOneStatement(e, "StacksByGenerators", func() (map[uuid.UUID]*models.Page[models.Stack], error) {
		return models.StacksByGenerators(e.ctx, e.db, admin, f.gens, nil, models.ListArgs{First: ptr(2)})
	})
	for _, g := range f.gens {
		p, want := stackPages[g], f.stacks[g]
		if p == nil {
			t.Fatalf("no page for generator %s", g)
		}
		if p.TotalCount != len(want) || p.HasNextPage != (len(want) > 2) || len(p.Nodes) != min(2, len(want)) {
			t.Fatalf("generator with %d stacks: %d nodes, total %d, next %v", len(want), len(p.Nodes), p.TotalCount, p.HasNextPage)
		}
		for i, s := range p.Nodes {
			if s.ID != want[i] || s.GeneratorID != g {
				t.Fatalf("stack %d of generator %s is %s", i, g, s.ID)
			}
		}
	}
	// The second page of the biggest generator through the same batch call.
	big := f.gens[3]
	next := must[map[uuid.UUID]*models.Page[models.Stack]](t)(models.StacksByGenerators(e.ctx, e.db, admin, []uuid.UUID{big}, nil, models.ListArgs{First: ptr(2), After: stackPages[big].EndCursor}))
	if p := next[big]; len(p.Nodes) != 2 || p.Nodes[0].ID != f.stacks[big][2] || !p.HasNextPage || p.TotalCount != 5 {
		t.Fatalf("second page: %+v", p)
	}
	// Filters apply per parent: label l0 is on stacks 0, 2, 4.
	filtered := must[map[uuid.UUID]*models.Page[models.Stack]](t)(models.StacksByGenerators(e.ctx, e.db, admin, f.gens, &models.StackFilter{Labels: []string{"l0"}}, models.ListArgs{}))
	if filtered[big].TotalCount != 3 || filtered[f.gens[2]].TotalCount != 2 || filtered[f.gens[1]].TotalCount != 1 || filtered[f.gens[0]].TotalCount != 0 {
		t.Fatal("per-parent filter")
	}
	// Scope: a generator asking for every generator's stacks gets only its own.
	scoped := must[map[uuid.UUID]*models.Page[models.Stack]](t)(models.StacksByGenerators(e.ctx, e.db, f.genScope, f.gens, nil, models.ListArgs{}))
	if scoped[big].TotalCount != 5 || scoped[f.gens[2]].TotalCount != 0 || scoped[f.gens[1]].TotalCount != 0 {
		t.Fatal("StacksByGenerators crossed the tenant boundary")
	}

	var allStacks []uuid.UUID
	for _, g := range f.gens {
		allStacks = append(allStacks, f.stacks[g]...)
	}
	objPages := inOneStatement(e, "DeploymentObjectsByStacks", func() (map[uuid.UUID]*models.Page[models.DeploymentObject], error) {
		return models.DeploymentObjectsByStacks(e.ctx, e.db, admin, allStacks, nil, models.ListArgs{First: ptr(3)})
	})
	for _, s := range allStacks {
		p, want := objPages[s], f.objects[s]
		if p.TotalCount != len(want) || len(p.Nodes) != min(3, len(want)) || p.HasNextPage != (len(want) > 3) {
			t.Fatalf("stack with %d objects: %d nodes, total %d", len(want), len(p.Nodes), p.TotalCount)
		}
		for i, d := range p.Nodes {
			if d.ID != want[len(want)-1-i] || d.SequenceID == 0 {
				t.Fatalf("object %d of stack %s out of order", i, s)
			}
		}
	}

	evPages := inOneStatement(e, "EventsByDeploymentObjects", func() (map[uuid.UUID]*models.Page[models.AgentEvent], error) {
		return models.EventsByDeploymentObjects(e.ctx, e.db, admin, f.allObjs, nil, models.ListArgs{First: ptr(1)})
	})
	for _, d := range f.allObjs {
		p := evPages[d]
		if p.TotalCount != 2 || len(p.Nodes) != 1 || !p.HasNextPage || p.Nodes[0].DeploymentObjectID != d {
			t.Fatalf("events of %s: %d nodes, total %d", d, len(p.Nodes), p.TotalCount)
		}
	}
	byAgent := inOneStatement(e, "EventsByAgents", func() (map[uuid.UUID]*models.Page[models.AgentEvent], error) {
		return models.EventsByAgents(e.ctx, e.db, admin, []uuid.UUID{f.agent, f.other}, &models.AgentEventFilter{Status: ptr("1")}, models.ListArgs{First: ptr(4)})
	})
	if p := byAgent[f.agent]; p.TotalCount != len(f.allObjs) || len(p.Nodes) != 4 || !p.HasNextPage {
		t.Fatalf("events of the agent: total %d", p.TotalCount)
	}
	if p := byAgent[f.other]; p.TotalCount != 0 || len(p.Nodes) != 0 || p.HasNextPage {
		t.Fatal("events of the other agent")
	}
}

func TestBatchLoadersAreOneStatementAndScoped(t *testing.T) {
	e := setup(t)
	f := newBatchFixture(e)
	var allStacks []uuid.UUID
	for _, g := range f.gens {
		allStacks = append(allStacks, f.stacks[g]...)
	}
	big := f.gens[3]
	gs := f.genScope
	one := func(name string, fn func()) {
		t.Helper()
		if n := e.statements(fn); n != 1 {
			t.Fatalf("%s ran %d statements", name, n)
		}
	}
	one("GeneratorsByIDs", func() {
		m := must[map[uuid.UUID]*models.Generator](t)(models.GeneratorsByIDs(e.ctx, e.db, admin, f.gens))
		if len(m) != 4 {
			t.Fatalf("%d generators", len(m))
		}
	})
	one("GeneratorsByIDs as a generator", func() {
		if m := must[map[uuid.UUID]*models.Generator](t)(models.GeneratorsByIDs(e.ctx, e.db, gs, f.gens)); len(m) != 1 || m[big] == nil {
			t.Fatal("a generator loaded other generators")
		}
	})
	one("StacksByIDs", func() {
		if m := must[map[uuid.UUID]*models.Stack](t)(models.StacksByIDs(e.ctx, e.db, gs, allStacks)); len(m) != 5 {
			t.Fatalf("generator loaded %d stacks", len(m))
		}
	})
	one("DeploymentObjectsByIDs", func() {
		m := must[map[uuid.UUID]*models.DeploymentObject](t)(models.DeploymentObjectsByIDs(e.ctx, e.db, models.AgentScope(f.agent), f.allObjs))
		if len(m) != len(f.allObjs) {
			t.Fatalf("agent loaded %d of %d objects", len(m), len(f.allObjs))
		}
		for _, d := range m {
			if d.SequenceID == 0 || d.YamlContent == "" {
				t.Fatal("object loaded without its columns")
			}
		}
	})
	one("AgentsByIDs", func() {
		if m := must[map[uuid.UUID]*models.Agent](t)(models.AgentsByIDs(e.ctx, e.db, models.AgentScope(f.agent), []uuid.UUID{f.agent, f.other})); len(m) != 1 || m[f.agent] == nil {
			t.Fatal("agent loaded another agent")
		}
	})
	one("LabelsByStacks", func() {
		m := must[map[uuid.UUID][]string](t)(models.LabelsByStacks(e.ctx, e.db, admin, allStacks, nil))
		if len(m) != len(allStacks) || m[f.stacks[big][1]][0] != "l1" {
			t.Fatalf("labels %v", m)
		}
	})
	one("AnnotationsByStacks", func() {
		must[map[uuid.UUID][]*models.Annotation](t)(models.AnnotationsByStacks(e.ctx, e.db, admin, allStacks, nil))
	})
	one("LabelsByAgents", func() {
		must[map[uuid.UUID][]string](t)(models.LabelsByAgents(e.ctx, e.db, admin, []uuid.UUID{f.agent}, nil))
	})
	one("AnnotationsByAgents", func() {
		must[map[uuid.UUID][]*models.Annotation](t)(models.AnnotationsByAgents(e.ctx, e.db, admin, []uuid.UUID{f.agent}, nil))
	})
	one("TargetsByAgents", func() {
		if m := must[map[uuid.UUID][]*models.AgentTarget](t)(models.TargetsByAgents(e.ctx, e.db, gs, []uuid.UUID{f.agent}, nil)); len(m[f.agent]) != 5 {
			t.Fatalf("generator sees %d of the agent's targets", len(m[f.agent]))
		}
	})
	one("TargetsByStacks", func() {
		if m := must[map[uuid.UUID][]*models.AgentTarget](t)(models.TargetsByStacks(e.ctx, e.db, admin, allStacks, nil)); len(m) != len(allStacks) {
			t.Fatal("targets by stacks")
		}
	})
	one("LatestDeploymentObjectsByStacks", func() {
		m := must[map[uuid.UUID]*models.DeploymentObject](t)(models.LatestDeploymentObjectsByStacks(e.ctx, e.db, gs, allStacks))
		if len(m) != 5 {
			t.Fatalf("generator sees the latest object of %d stacks", len(m))
		}
		for s, d := range m {
			if want := f.objects[s][len(f.objects[s])-1]; d.ID != want {
				t.Fatalf("latest of %s is %s, want %s", s, d.ID, want)
			}
		}
	})
	one("DesiredStatesByAgents", func() {
		m := must[map[uuid.UUID][]*models.DeploymentObject](t)(models.DesiredStatesByAgents(e.ctx, e.db, admin, []uuid.UUID{f.agent, f.other}, nil))
		if len(m[f.agent]) != len(allStacks) || len(m[f.other]) != 0 {
			t.Fatalf("desired states: %d, %d", len(m[f.agent]), len(m[f.other]))
		}
	})
	// Soft-deleted rows: admins load them as parents, others do not.
	must[*models.Stack](t)(models.DeleteStack(e.ctx, e.db, admin, f.stacks[big][0], false))
	if m := must[map[uuid.UUID]*models.Stack](t)(models.StacksByIDs(e.ctx, e.db, admin, []uuid.UUID{f.stacks[big][0]})); m[f.stacks[big][0]] == nil {
		t.Fatal("admin cannot load a deleted parent")
	}
	if m := must[map[uuid.UUID]*models.Stack](t)(models.StacksByIDs(e.ctx, e.db, gs, []uuid.UUID{f.stacks[big][0]})); len(m) != 0 {
		t.Fatal("generator loads a deleted stack")
	}
	// Empty key lists are fine.
	if m := must[map[uuid.UUID]*models.Page[models.Stack]](t)(models.StacksByGenerators(e.ctx, e.db, admin, nil, nil, models.ListArgs{})); len(m) != 0 {
		t.Fatal("pages for no generators")
	}
}
