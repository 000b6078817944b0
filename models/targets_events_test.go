package models_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

func TestAgentTargets(t *testing.T) {
	e := setup(t)
	g, _, gs := e.generator("g")
	g2, _, gs2 := e.generator("g2")
	s := e.stack(g.ID, "s")
	s2 := e.stack(g2.ID, "s2")
	a, as := e.agent("a", true)
	b, _ := e.agent("b", true)

	// A generator targets its own stacks at any agent.
	tg := must[*models.AgentTarget](t)(models.AddAgentTarget(e.ctx, e.db, gs, a.ID, s.ID))
	if tg.AgentID != a.ID || tg.StackID != s.ID || tg.ID == uuid.Nil {
		t.Fatalf("%+v", tg)
	}
	_, err := models.AddAgentTarget(e.ctx, e.db, gs, a.ID, s.ID)
	if de := wantKind(t, err, models.KindConflict); de.Constraint != "agent_targets_agent_id_stack_id_key" {
		t.Fatal(de.Constraint)
	}
	_, err = models.AddAgentTarget(e.ctx, e.db, gs, a.ID, s2.ID) // not its stack
	wantKind(t, err, models.KindNotFound)
	_, err = models.AddAgentTarget(e.ctx, e.db, gs, uuid.New(), s.ID) // no such agent
	wantKind(t, err, models.KindNotFound)
	_, err = models.AddAgentTarget(e.ctx, e.db, as, a.ID, s.ID)
	wantKind(t, err, models.KindForbidden)
	must[*models.AgentTarget](t)(models.AddAgentTarget(e.ctx, e.db, admin, b.ID, s2.ID))
	must[*models.AgentTarget](t)(models.AddAgentTarget(e.ctx, e.db, admin, b.ID, s.ID))
	// A deleted agent cannot be targeted.
	c, _ := e.agent("c", true)
	must[*models.Agent](t)(models.DeleteAgent(e.ctx, e.db, admin, c.ID, false))
	_, err = models.AddAgentTarget(e.ctx, e.db, admin, c.ID, s.ID)
	wantKind(t, err, models.KindNotFound)

	count := func(sc models.Scope, agentID, stackID *uuid.UUID) int {
		return len(must[[]*models.AgentTarget](t)(models.ListTargets(e.ctx, e.db, sc, agentID, stackID)))
	}
	if n := count(admin, nil, nil); n != 3 {
		t.Fatalf("admin sees %d targets", n)
	}
	if n := count(gs, nil, nil); n != 2 { // a→s, b→s
		t.Fatalf("g sees %d targets", n)
	}
	if n := count(gs2, nil, nil); n != 1 {
		t.Fatalf("g2 sees %d targets", n)
	}
	if n := count(as, nil, nil); n != 1 {
		t.Fatalf("agent a sees %d targets", n)
	}
	if n := count(admin, &b.ID, nil); n != 2 {
		t.Fatalf("b has %d targets", n)
	}
	if n := count(admin, nil, &s.ID); n != 2 {
		t.Fatalf("s has %d targets", n)
	}
	byAgent := must[map[uuid.UUID][]*models.AgentTarget](t)(models.TargetsByAgents(e.ctx, e.db, gs, []uuid.UUID{a.ID, b.ID}, nil))
	if len(byAgent[a.ID]) != 1 || len(byAgent[b.ID]) != 1 || byAgent[b.ID][0].StackID != s.ID {
		t.Fatalf("TargetsByAgents as g: %v", byAgent)
	}
	byStack := must[map[uuid.UUID][]*models.AgentTarget](t)(models.TargetsByStacks(e.ctx, e.db, admin, []uuid.UUID{s.ID, s2.ID}, nil))
	if len(byStack[s.ID]) != 2 || len(byStack[s2.ID]) != 1 {
		t.Fatalf("TargetsByStacks: %v", byStack)
	}
	// A generator sees the agents targeting its stacks (and only those).
	agents := must[*models.Page[models.Agent]](t)(models.ListAgents(e.ctx, e.db, gs2, nil, models.ListArgs{}))
	if agents.TotalCount != 1 || agents.Nodes[0].ID != b.ID {
		t.Fatalf("g2 sees %d agents", agents.TotalCount)
	}
	_, err = models.GetAgent(e.ctx, e.db, gs2, a.ID, false)
	wantKind(t, err, models.KindNotFound)

	_, err = models.RemoveAgentTarget(e.ctx, e.db, gs2, a.ID, s.ID)
	wantKind(t, err, models.KindNotFound)
	_, err = models.RemoveAgentTarget(e.ctx, e.db, as, a.ID, s.ID)
	wantKind(t, err, models.KindForbidden)
	rm := must[*models.AgentTarget](t)(models.RemoveAgentTarget(e.ctx, e.db, gs, a.ID, s.ID))
	if rm.ID != tg.ID {
		t.Fatal("removed another target")
	}
	_, err = models.RemoveAgentTarget(e.ctx, e.db, gs, a.ID, s.ID)
	wantKind(t, err, models.KindNotFound)
}

func TestAgentScopeFollowsTargetsAndStatus(t *testing.T) {
	e := setup(t)
	g, _, _ := e.generator("g")
	s := e.stack(g.ID, "s")
	other := e.stack(g.ID, "other")
	d := e.object(s.ID, "a: 1")
	od := e.object(other.ID, "b: 1")
	a, as := e.agent("a", false)
	e.target(a.ID, s.ID)

	// INACTIVE: itself and its targets, but no stacks, objects or desired state.
	must[*models.Agent](t)(models.GetAgent(e.ctx, e.db, as, a.ID, false))
	if n := len(must[[]*models.AgentTarget](t)(models.ListTargets(e.ctx, e.db, as, nil, nil))); n != 1 {
		t.Fatalf("inactive agent sees %d targets", n)
	}
	_, err := models.GetDeploymentObject(e.ctx, e.db, as, d.ID, false)
	wantKind(t, err, models.KindNotFound)
	if ds := must[[]*models.DeploymentObject](t)(models.DesiredState(e.ctx, e.db, as, a.ID)); len(ds) != 0 {
		t.Fatalf("inactive agent's desired state has %d objects", len(ds))
	}
	if ds := must[[]*models.DeploymentObject](t)(models.DesiredState(e.ctx, e.db, admin, a.ID)); len(ds) != 0 {
		t.Fatalf("inactive agent's desired state (as admin) has %d objects", len(ds))
	}
	_, err = models.ReportAgentEvent(e.ctx, e.db, as, models.ReportAgentEventInput{DeploymentObjectID: d.ID, EventType: "DEPLOY", Status: "OK"})
	wantKind(t, err, models.KindNotFound)

	// ACTIVE: the targeted stack and its objects, nothing else.
	must[*models.Agent](t)(models.UpdateAgent(e.ctx, e.db, admin, models.UpdateAgentInput{ID: a.ID, Status: ptr(models.AgentStatusActive)}))
	must[*models.DeploymentObject](t)(models.GetDeploymentObject(e.ctx, e.db, as, d.ID, false))
	_, err = models.GetDeploymentObject(e.ctx, e.db, as, od.ID, false)
	wantKind(t, err, models.KindNotFound)
	_, err = models.GetStack(e.ctx, e.db, as, other.ID, false)
	wantKind(t, err, models.KindNotFound)
	p := must[*models.Page[models.DeploymentObject]](t)(models.ListDeploymentObjects(e.ctx, e.db, as, nil, models.ListArgs{}))
	if p.TotalCount != 1 || p.Nodes[0].ID != d.ID {
		t.Fatalf("agent lists %d objects", p.TotalCount)
	}
	b, bs := e.agent("b", true)
	_, err = models.GetAgent(e.ctx, e.db, as, b.ID, false)
	wantKind(t, err, models.KindNotFound)
	_, err = models.DesiredState(e.ctx, e.db, as, b.ID)
	wantKind(t, err, models.KindNotFound)
	_, err = models.ListAgents(e.ctx, e.db, bs, nil, models.ListArgs{IncludeDeleted: true})
	wantKind(t, err, models.KindForbidden)
}

func TestDesiredState(t *testing.T) {
	e := setup(t)
	g, _, gs := e.generator("g")
	s1 := e.stack(g.ID, "s1")
	s2 := e.stack(g.ID, "s2")
	s3 := e.stack(g.ID, "s3")
	untargeted := e.stack(g.ID, "u")
	e.object(s1.ID, "v: 1")
	e.object(s2.ID, "w: 1")
	s1v2 := e.object(s1.ID, "v: 2")
	s2v2 := e.object(s2.ID, "w: 2")
	e.object(untargeted.ID, "u: 1")
	a, as := e.agent("a", true)
	b, _ := e.agent("b", true)
	for _, s := range []*models.Stack{s1, s2, s3} {
		e.target(a.ID, s.ID)
	}
	e.target(b.ID, s1.ID)

	ds := must[[]*models.DeploymentObject](t)(models.DesiredState(e.ctx, e.db, as, a.ID))
	if len(ds) != 2 || ds[0].ID != s1v2.ID || ds[1].ID != s2v2.ID {
		t.Fatalf("desired state: %v", ids(ds))
	}
	// A deleted object falls back to the previous one; a deleted stack to its marker.
	must[*models.DeploymentObject](t)(models.DeleteDeploymentObject(e.ctx, e.db, gs, s1v2.ID))
	must[*models.Stack](t)(models.DeleteStack(e.ctx, e.db, gs, s2.ID, false))
	ds = must[[]*models.DeploymentObject](t)(models.DesiredState(e.ctx, e.db, as, a.ID))
	if len(ds) != 2 || ds[0].YamlContent != "v: 1" || !ds[1].IsDeletionMarker || ds[1].StackID != s2.ID || ds[0].SequenceID > ds[1].SequenceID {
		t.Fatalf("desired state after deletes: %+v", ds)
	}
	// An agent cannot read another agent's desired state, even in a batch.
	if m := must[map[uuid.UUID][]*models.DeploymentObject](t)(models.DesiredStatesByAgents(e.ctx, e.db, as, []uuid.UUID{a.ID, b.ID}, nil)); len(m[b.ID]) != 0 || len(m[a.ID]) != 2 {
		t.Fatalf("agent a reads b's desired state: %d", len(m[b.ID]))
	}
	all := must[map[uuid.UUID][]*models.DeploymentObject](t)(models.DesiredStatesByAgents(e.ctx, e.db, admin, []uuid.UUID{a.ID, b.ID, uuid.New()}, nil))
	if len(all[a.ID]) != 2 || len(all[b.ID]) != 1 || all[b.ID][0].YamlContent != "v: 1" || len(all) != 3 {
		t.Fatalf("batched desired states: %v", all)
	}
}

func ids(ds []*models.DeploymentObject) []uuid.UUID {
	out := make([]uuid.UUID, len(ds))
	for i, d := range ds {
		out[i] = d.ID
	}
	return out
}

func TestReportAgentEvent(t *testing.T) {
	e := setup(t)
	g, _, gs := e.generator("g")
	g2, _, gs2 := e.generator("g2")
	s := e.stack(g.ID, "s")
	foreign := e.stack(g2.ID, "f")
	d := e.object(s.ID, "a: 1")
	fd := e.object(foreign.ID, "f: 1")
	a, as := e.agent("a", true)
	b, bs := e.agent("b", true)
	e.target(a.ID, s.ID)
	e.target(b.ID, s.ID)

	ev := must[*models.AgentEvent](t)(models.ReportAgentEvent(e.ctx, e.db, as, models.ReportAgentEventInput{
		DeploymentObjectID: d.ID, EventType: "DEPLOY", Status: "FAILURE", Message: ptr("boom")}))
	if ev.AgentID != a.ID || ev.DeploymentObjectID != d.ID || ev.EventType != "DEPLOY" || ev.Status != "FAILURE" || *ev.Message != "boom" {
		t.Fatalf("%+v", ev)
	}
	must[*models.AgentEvent](t)(models.ReportAgentEvent(e.ctx, e.db, bs, models.ReportAgentEventInput{DeploymentObjectID: d.ID, EventType: "DEPLOY", Status: "SUCCESS"}))

	// Only agents, only for objects of stacks they target.
	_, err := models.ReportAgentEvent(e.ctx, e.db, as, models.ReportAgentEventInput{DeploymentObjectID: fd.ID, EventType: "DEPLOY", Status: "SUCCESS"})
	wantKind(t, err, models.KindNotFound)
	_, err = models.ReportAgentEvent(e.ctx, e.db, as, models.ReportAgentEventInput{DeploymentObjectID: uuid.New(), EventType: "DEPLOY", Status: "SUCCESS"})
	wantKind(t, err, models.KindNotFound)
	_, err = models.ReportAgentEvent(e.ctx, e.db, admin, models.ReportAgentEventInput{DeploymentObjectID: d.ID, EventType: "DEPLOY", Status: "SUCCESS"})
	wantKind(t, err, models.KindForbidden)
	_, err = models.ReportAgentEvent(e.ctx, e.db, gs, models.ReportAgentEventInput{DeploymentObjectID: d.ID, EventType: "DEPLOY", Status: "SUCCESS"})
	wantKind(t, err, models.KindForbidden)
	for _, c := range []struct {
		in    models.ReportAgentEventInput
		field string
	}{
		{models.ReportAgentEventInput{DeploymentObjectID: d.ID, EventType: "", Status: "OK"}, "eventType"},
		{models.ReportAgentEventInput{DeploymentObjectID: d.ID, EventType: strings.Repeat("e", 51), Status: "OK"}, "eventType"},
		{models.ReportAgentEventInput{DeploymentObjectID: d.ID, EventType: "DEPLOY", Status: "\t"}, "status"},
		{models.ReportAgentEventInput{DeploymentObjectID: d.ID, EventType: "DEPLOY", Status: "ABCDEFGHIJK"}, "status"},
	} {
		_, err := models.ReportAgentEvent(e.ctx, e.db, as, c.in)
		wantField(t, err, c.field)
	}
	// A deletion marker of a targeted stack may be acknowledged.
	must[*models.Stack](t)(models.DeleteStack(e.ctx, e.db, admin, s.ID, false))
	ds := must[[]*models.DeploymentObject](t)(models.DesiredState(e.ctx, e.db, as, a.ID))
	if len(ds) != 1 || !ds[0].IsDeletionMarker {
		t.Fatalf("desired state %v", ds)
	}
	must[*models.AgentEvent](t)(models.ReportAgentEvent(e.ctx, e.db, as, models.ReportAgentEventInput{DeploymentObjectID: ds[0].ID, EventType: "DELETE", Status: "SUCCESS"}))

	// Reads: an agent its own events, a generator those about its objects.
	count := func(sc models.Scope, f *models.AgentEventFilter) int {
		return must[*models.Page[models.AgentEvent]](t)(models.ListAgentEvents(e.ctx, e.db, sc, f, models.ListArgs{})).TotalCount
	}
	if n := count(as, nil); n != 2 {
		t.Fatalf("agent a sees %d events", n)
	}
	if n := count(bs, nil); n != 1 {
		t.Fatalf("agent b sees %d events", n)
	}
	if n := count(admin, nil); n != 3 {
		t.Fatalf("admin sees %d events", n)
	}
	if n := count(gs2, nil); n != 0 {
		t.Fatalf("g2 sees %d events", n)
	}
	if n := count(admin, &models.AgentEventFilter{AgentID: &a.ID, Status: ptr("FAILURE")}); n != 1 {
		t.Fatalf("filter agent+status: %d", n)
	}
	if n := count(admin, &models.AgentEventFilter{StackID: &s.ID, EventType: ptr("DEPLOY")}); n != 2 {
		t.Fatalf("filter stack+type: %d", n)
	}
	if n := count(admin, &models.AgentEventFilter{DeploymentObjectID: &d.ID}); n != 2 {
		t.Fatalf("filter object: %d", n)
	}
	// The generator's stack is deleted now: its events went out of its sight.
	if n := count(gs, nil); n != 0 {
		t.Fatalf("g sees %d events of a deleted stack", n)
	}
	must[*models.Stack](t)(models.RestoreStack(e.ctx, e.db, admin, s.ID))
	if n := count(gs, nil); n != 3 {
		t.Fatalf("g sees %d events", n)
	}
	if m := must[map[uuid.UUID]*models.AgentEvent](t)(models.AgentEventsByIDs(e.ctx, e.db, bs, []uuid.UUID{ev.ID})); len(m) != 0 {
		t.Fatal("agent b reads agent a's event")
	}
}
