package models_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// A scope with no role (a bug upstream) sees and changes nothing.
func TestZeroScopeSeesNothing(t *testing.T) {
	e := setup(t)
	g, _, _ := e.generator("g")
	s := e.stack(g.ID, "s")
	d := e.object(s.ID, "a: 1")
	a, _ := e.agent("a", true)
	e.target(a.ID, s.ID)
	var zero models.Scope

	_, err := models.GetGenerator(e.ctx, e.db, zero, g.ID, false)
	wantKind(t, err, models.KindNotFound)
	_, err = models.GetStack(e.ctx, e.db, zero, s.ID, false)
	wantKind(t, err, models.KindNotFound)
	_, err = models.GetDeploymentObject(e.ctx, e.db, zero, d.ID, false)
	wantKind(t, err, models.KindNotFound)
	_, err = models.GetAgent(e.ctx, e.db, zero, a.ID, false)
	wantKind(t, err, models.KindNotFound)
	if ts := must[[]*models.AgentTarget](t)(models.ListTargets(e.ctx, e.db, zero, nil, nil)); len(ts) != 0 {
		t.Fatal("zero scope lists targets")
	}
	if p := must[*models.Page[models.Stack]](t)(models.ListStacks(e.ctx, e.db, zero, nil, models.ListArgs{})); p.TotalCount != 0 {
		t.Fatal("zero scope lists stacks")
	}
	if m := must[map[uuid.UUID][]string](t)(models.LabelsByStacks(e.ctx, e.db, zero, []uuid.UUID{s.ID}, nil)); len(m) != 0 {
		t.Fatal("zero scope loads labels")
	}
	_, err = models.CreateStack(e.ctx, e.db, zero, models.CreateStackInput{GeneratorID: &g.ID, Name: "x"})
	wantKind(t, err, models.KindForbidden)
	_, err = models.DeleteStack(e.ctx, e.db, zero, s.ID, false)
	wantKind(t, err, models.KindForbidden)
	_, err = models.AddAgentTarget(e.ctx, e.db, zero, a.ID, s.ID)
	wantKind(t, err, models.KindForbidden)
}

// Two generators never see each other's stacks, objects, events or
// targets, through any read.
func TestGeneratorsAreIsolated(t *testing.T) {
	e := setup(t)
	g1, _, s1 := e.generator("g1")
	g2, _, s2 := e.generator("g2")
	st1 := e.stack(g1.ID, "same-name")
	st2 := e.stack(g2.ID, "same-name")
	d1 := e.object(st1.ID, "one: 1")
	d2 := e.object(st2.ID, "two: 2")
	a, as := e.agent("a", true)
	e.target(a.ID, st1.ID)
	e.target(a.ID, st2.ID)
	must[*models.AgentEvent](t)(models.ReportAgentEvent(e.ctx, e.db, as, models.ReportAgentEventInput{DeploymentObjectID: d1.ID, EventType: "DEPLOY", Status: "OK"}))
	must[*models.AgentEvent](t)(models.ReportAgentEvent(e.ctx, e.db, as, models.ReportAgentEventInput{DeploymentObjectID: d2.ID, EventType: "DEPLOY", Status: "OK"}))

	for _, c := range []struct {
		sc           models.Scope
		own, foreign *models.Stack
		ownD, forD   *models.DeploymentObject
	}{{s1, st1, st2, d1, d2}, {s2, st2, st1, d2, d1}} {
		_, err := models.GetDeploymentObject(e.ctx, e.db, c.sc, c.forD.ID, false)
		wantKind(t, err, models.KindNotFound)
		_, err = models.LatestDeploymentObject(e.ctx, e.db, c.sc, c.foreign.ID)
		wantKind(t, err, models.KindNotFound)
		_, err = models.RollbackStack(e.ctx, e.db, c.sc, c.foreign.ID, c.forD.ID)
		wantKind(t, err, models.KindNotFound)
		_, err = models.RollbackStack(e.ctx, e.db, c.sc, c.own.ID, c.forD.ID)
		wantKind(t, err, models.KindNotFound)
		_, err = models.RemoveAgentTarget(e.ctx, e.db, c.sc, a.ID, c.foreign.ID)
		wantKind(t, err, models.KindNotFound)
		objs := must[*models.Page[models.DeploymentObject]](t)(models.ListDeploymentObjects(e.ctx, e.db, c.sc, nil, models.ListArgs{}))
		if objs.TotalCount != 1 || objs.Nodes[0].ID != c.ownD.ID {
			t.Fatalf("lists %d objects", objs.TotalCount)
		}
		evs := must[*models.Page[models.AgentEvent]](t)(models.ListAgentEvents(e.ctx, e.db, c.sc, nil, models.ListArgs{}))
		if evs.TotalCount != 1 || evs.Nodes[0].DeploymentObjectID != c.ownD.ID {
			t.Fatalf("lists %d events", evs.TotalCount)
		}
		byObj := must[map[uuid.UUID]*models.Page[models.AgentEvent]](t)(models.EventsByDeploymentObjects(e.ctx, e.db, c.sc, []uuid.UUID{d1.ID, d2.ID}, nil, models.ListArgs{}))
		if byObj[c.forD.ID].TotalCount != 0 || byObj[c.ownD.ID].TotalCount != 1 {
			t.Fatal("events by objects crossed tenants")
		}
		byStack := must[map[uuid.UUID]*models.Page[models.DeploymentObject]](t)(models.DeploymentObjectsByStacks(e.ctx, e.db, c.sc, []uuid.UUID{st1.ID, st2.ID}, nil, models.ListArgs{}))
		if byStack[c.foreign.ID].TotalCount != 0 || byStack[c.own.ID].TotalCount != 1 {
			t.Fatal("objects by stacks crossed tenants")
		}
		if ts := must[[]*models.AgentTarget](t)(models.ListTargets(e.ctx, e.db, c.sc, &a.ID, nil)); len(ts) != 1 || ts[0].StackID != c.own.ID {
			t.Fatal("targets crossed tenants")
		}
		// The agent both target is visible to both, its desired state only in part.
		if ds := must[[]*models.DeploymentObject](t)(models.DesiredState(e.ctx, e.db, c.sc, a.ID)); len(ds) != 1 || ds[0].ID != c.ownD.ID {
			t.Fatalf("desired state through a generator: %v", ids(ds))
		}
	}
}

func TestRestoreStackOfDeletedGenerator(t *testing.T) {
	e := setup(t)
	g, _, _ := e.generator("g")
	s := e.stack(g.ID, "s")
	must[*models.Generator](t)(models.DeleteGenerator(e.ctx, e.db, admin, g.ID, false))
	_, err := models.RestoreStack(e.ctx, e.db, admin, s.ID)
	wantKind(t, err, models.KindNotFound)
	_, err = models.CreateStack(e.ctx, e.db, admin, models.CreateStackInput{GeneratorID: &g.ID, Name: "new"})
	wantKind(t, err, models.KindNotFound)
}
