package models_test

import (
	"reflect"
	"testing"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/apikey"
	"github.com/brokkr/brokkr/models"
)

func TestCreateAgent(t *testing.T) {
	e := setup(t)
	_, _, gs := e.generator("g")
	ak := must[*models.AgentWithKey](t)(models.CreateAgent(e.ctx, e.db, admin, models.CreateAgentInput{
		Name: "a", ClusterName: "eu-1", Labels: []string{"gpu"}, Annotations: []*models.AnnotationInput{{Key: "zone", Value: "b"}}}))
	a := ak.Agent
	if a.Status != models.AgentStatusInactive || a.Name != "a" || a.ClusterName != "eu-1" || a.LastHeartbeat != nil {
		t.Fatalf("agent %+v", a)
	}
	sc := must[models.Scope](t)(models.PrincipalForKeyHash(e.ctx, e.db, apikey.Hash(ak.APIKey)))
	if sc.Role != models.RoleAgent || sc.AgentID != a.ID {
		t.Fatalf("principal %+v", sc)
	}
	if l := must[map[uuid.UUID][]string](t)(models.LabelsByAgents(e.ctx, e.db, admin, []uuid.UUID{a.ID}, nil)); !reflect.DeepEqual(l[a.ID], []string{"gpu"}) {
		t.Fatal(l)
	}
	if an := must[map[uuid.UUID][]*models.Annotation](t)(models.AnnotationsByAgents(e.ctx, e.db, sc, []uuid.UUID{a.ID}, nil)); len(an[a.ID]) != 1 || an[a.ID][0].Value != "b" {
		t.Fatal(an)
	}

	_, err := models.CreateAgent(e.ctx, e.db, gs, models.CreateAgentInput{Name: "x", ClusterName: "c"})
	wantKind(t, err, models.KindForbidden)
	_, err = models.CreateAgent(e.ctx, e.db, sc, models.CreateAgentInput{Name: "x", ClusterName: "c"})
	wantKind(t, err, models.KindForbidden)
	_, err = models.CreateAgent(e.ctx, e.db, admin, models.CreateAgentInput{Name: "a", ClusterName: "eu-1"})
	if de := wantKind(t, err, models.KindConflict); de.Constraint != "agents_name_cluster_name_live_key" {
		t.Fatal(de.Constraint)
	}
	must[*models.AgentWithKey](t)(models.CreateAgent(e.ctx, e.db, admin, models.CreateAgentInput{Name: "a", ClusterName: "eu-2"}))
	_, err = models.CreateAgent(e.ctx, e.db, admin, models.CreateAgentInput{Name: "x", ClusterName: ""})
	wantField(t, err, "clusterName")
	_, err = models.CreateAgent(e.ctx, e.db, admin, models.CreateAgentInput{Name: "", ClusterName: "c"})
	wantField(t, err, "name")
	_, err = models.CreateAgent(e.ctx, e.db, admin, models.CreateAgentInput{Name: "x", ClusterName: "c", Labels: []string{"a b"}})
	wantField(t, err, "labels")
}

func TestUpdateAgent(t *testing.T) {
	e := setup(t)
	a, as := e.agent("a", false)
	b, _ := e.agent("b", false)
	_, _, gs := e.generator("g")

	// An agent may rename itself, not change its status, not touch others.
	up := must[*models.Agent](t)(models.UpdateAgent(e.ctx, e.db, as, models.UpdateAgentInput{ID: a.ID, Name: ptr("a2"), ClusterName: ptr("c2")}))
	if up.Name != "a2" || up.ClusterName != "c2" {
		t.Fatalf("%+v", up)
	}
	_, err := models.UpdateAgent(e.ctx, e.db, as, models.UpdateAgentInput{ID: a.ID, Status: ptr(models.AgentStatusActive)})
	wantKind(t, err, models.KindForbidden)
	_, err = models.UpdateAgent(e.ctx, e.db, as, models.UpdateAgentInput{ID: b.ID, Name: ptr("z")})
	wantKind(t, err, models.KindNotFound)
	_, err = models.UpdateAgent(e.ctx, e.db, gs, models.UpdateAgentInput{ID: a.ID, Name: ptr("z")})
	wantKind(t, err, models.KindForbidden)

	act := must[*models.Agent](t)(models.UpdateAgent(e.ctx, e.db, admin, models.UpdateAgentInput{ID: a.ID, Status: ptr(models.AgentStatusActive)}))
	if act.Status != models.AgentStatusActive {
		t.Fatal("not activated")
	}
	_, err = models.UpdateAgent(e.ctx, e.db, admin, models.UpdateAgentInput{ID: a.ID, Status: ptr(models.AgentStatus("BUSY"))})
	wantField(t, err, "status")
	_, err = models.UpdateAgent(e.ctx, e.db, admin, models.UpdateAgentInput{ID: a.ID, ClusterName: ptr(" ")})
	wantField(t, err, "clusterName")
	_, err = models.UpdateAgent(e.ctx, e.db, admin, models.UpdateAgentInput{ID: uuid.New(), Name: ptr("q")})
	wantKind(t, err, models.KindNotFound)
	// A status the Go check would not see is still refused by the database.
	_, err = e.db.ExecContext(e.ctx, "UPDATE agents SET status = 'BUSY' WHERE id = ?", a.ID)
	if de := wantKind(t, models.Translate(err, "agent"), models.KindInvalid); de.Field != "status" {
		t.Fatal(de.Field)
	}
}

func TestAgentKeysHeartbeatDelete(t *testing.T) {
	e := setup(t)
	ak := must[*models.AgentWithKey](t)(models.CreateAgent(e.ctx, e.db, admin, models.CreateAgentInput{Name: "a", ClusterName: "c"}))
	a, as := ak.Agent, models.AgentScope(ak.Agent.ID)
	b, bs := e.agent("b", true)
	_, _, gs := e.generator("g")

	// An INACTIVE agent may heartbeat.
	hb := must[*models.Agent](t)(models.AgentHeartbeat(e.ctx, e.db, as))
	if hb.LastHeartbeat == nil || hb.ID != a.ID {
		t.Fatal("no heartbeat")
	}
	_, err := models.AgentHeartbeat(e.ctx, e.db, admin)
	wantKind(t, err, models.KindForbidden)
	_, err = models.AgentHeartbeat(e.ctx, e.db, gs)
	wantKind(t, err, models.KindForbidden)

	rk := must[*models.AgentWithKey](t)(models.RotateAgentKey(e.ctx, e.db, as, a.ID))
	_, err = models.PrincipalForKeyHash(e.ctx, e.db, apikey.Hash(ak.APIKey))
	wantKind(t, err, models.KindUnauthenticated)
	must[models.Scope](t)(models.PrincipalForKeyHash(e.ctx, e.db, apikey.Hash(rk.APIKey)))
	_, err = models.RotateAgentKey(e.ctx, e.db, bs, a.ID)
	wantKind(t, err, models.KindNotFound)
	_, err = models.RotateAgentKey(e.ctx, e.db, gs, a.ID)
	wantKind(t, err, models.KindForbidden)
	must[*models.AgentWithKey](t)(models.RotateAgentKey(e.ctx, e.db, admin, b.ID))

	_, err = models.DeleteAgent(e.ctx, e.db, as, a.ID, false)
	wantKind(t, err, models.KindForbidden)
	must[*models.Agent](t)(models.DeleteAgent(e.ctx, e.db, admin, a.ID, false))
	_, err = models.PrincipalForKeyHash(e.ctx, e.db, apikey.Hash(rk.APIKey))
	wantKind(t, err, models.KindUnauthenticated)
	_, err = models.AgentHeartbeat(e.ctx, e.db, as)
	wantKind(t, err, models.KindNotFound)
	_, err = models.GetAgent(e.ctx, e.db, admin, a.ID, false)
	wantKind(t, err, models.KindNotFound)
	must[*models.Agent](t)(models.GetAgent(e.ctx, e.db, admin, a.ID, true))
	// The name is free while the agent is deleted.
	must[*models.AgentWithKey](t)(models.CreateAgent(e.ctx, e.db, admin, models.CreateAgentInput{Name: "a", ClusterName: "c"}))
	_, err = models.RestoreAgent(e.ctx, e.db, admin, a.ID)
	wantKind(t, err, models.KindConflict)
	_, err = models.RestoreAgent(e.ctx, e.db, admin, b.ID)
	wantField(t, err, "id")
	must[*models.Agent](t)(models.DeleteAgent(e.ctx, e.db, admin, a.ID, true))
	_, err = models.GetAgent(e.ctx, e.db, admin, a.ID, true)
	wantKind(t, err, models.KindNotFound)
}

func TestRestoreAgentBringsEventsBack(t *testing.T) {
	e := setup(t)
	g, _, _ := e.generator("g")
	s := e.stack(g.ID, "s")
	d := e.object(s.ID, "a: 1")
	a, as := e.agent("a", true)
	e.target(a.ID, s.ID)
	ev := must[*models.AgentEvent](t)(models.ReportAgentEvent(e.ctx, e.db, as, models.ReportAgentEventInput{DeploymentObjectID: d.ID, EventType: "DEPLOY", Status: "SUCCESS"}))
	must[*models.Agent](t)(models.DeleteAgent(e.ctx, e.db, admin, a.ID, false))
	if m := must[map[uuid.UUID]*models.AgentEvent](t)(models.AgentEventsByIDs(e.ctx, e.db, admin, []uuid.UUID{ev.ID})); m[ev.ID].DeletedAt == nil {
		t.Fatal("event not soft-deleted with its agent")
	}
	must[*models.Agent](t)(models.RestoreAgent(e.ctx, e.db, admin, a.ID))
	p := must[*models.Page[models.AgentEvent]](t)(models.ListAgentEvents(e.ctx, e.db, as, nil, models.ListArgs{}))
	if p.TotalCount != 1 || p.Nodes[0].ID != ev.ID {
		t.Fatal("event not restored")
	}
}

func TestAgentLabelsAnnotationsAndFilters(t *testing.T) {
	e := setup(t)
	a, as := e.agent("a", true)
	b, _ := e.agent("b", false)
	_, _, gs := e.generator("g")

	must[*models.Agent](t)(models.AddAgentLabel(e.ctx, e.db, admin, a.ID, "gpu"))
	must[*models.Agent](t)(models.AddAgentLabel(e.ctx, e.db, admin, a.ID, "eu"))
	must[*models.Agent](t)(models.AddAgentLabel(e.ctx, e.db, admin, b.ID, "eu"))
	_, err := models.AddAgentLabel(e.ctx, e.db, admin, a.ID, "gpu")
	if de := wantKind(t, err, models.KindConflict); de.Constraint != "agent_labels_agent_id_label_key" {
		t.Fatal(de.Constraint)
	}
	_, err = models.AddAgentLabel(e.ctx, e.db, as, a.ID, "x")
	wantKind(t, err, models.KindForbidden)
	_, err = models.AddAgentLabel(e.ctx, e.db, gs, a.ID, "x")
	wantKind(t, err, models.KindForbidden)
	_, err = models.AddAgentLabel(e.ctx, e.db, admin, a.ID, "")
	wantField(t, err, "label")
	_, err = models.AddAgentLabel(e.ctx, e.db, admin, uuid.New(), "x")
	wantKind(t, err, models.KindNotFound)
	must[*models.Agent](t)(models.SetAgentAnnotation(e.ctx, e.db, admin, a.ID, "zone", "1"))
	must[*models.Agent](t)(models.SetAgentAnnotation(e.ctx, e.db, admin, a.ID, "zone", "2"))
	must[*models.Agent](t)(models.SetAgentAnnotation(e.ctx, e.db, admin, b.ID, "zone", "1"))

	list := func(f models.AgentFilter) []string {
		p := must[*models.Page[models.Agent]](t)(models.ListAgents(e.ctx, e.db, admin, &f, models.ListArgs{}))
		return names(p.Nodes, func(a *models.Agent) string { return a.Name })
	}
	for _, c := range []struct {
		f    models.AgentFilter
		want []string
	}{
		{models.AgentFilter{Labels: []string{"eu"}}, []string{"a", "b"}},
		{models.AgentFilter{Labels: []string{"eu", "gpu"}}, []string{"a"}},
		{models.AgentFilter{Annotations: []*models.AnnotationInput{{Key: "zone", Value: "2"}}}, []string{"a"}},
		{models.AgentFilter{Annotations: []*models.AnnotationInput{{Key: "zone", Value: "1"}}, Labels: []string{"eu"}}, []string{"b"}},
		{models.AgentFilter{Status: ptr(models.AgentStatusActive)}, []string{"a"}},
		{models.AgentFilter{Status: ptr(models.AgentStatusInactive)}, []string{"b"}},
		{models.AgentFilter{Name: ptr("b"), ClusterName: ptr("c1")}, []string{"b"}},
		{models.AgentFilter{ClusterName: ptr("nope")}, []string{}},
	} {
		if got := list(c.f); !reflect.DeepEqual(got, c.want) {
			t.Errorf("filter %+v: got %v want %v", c.f, got, c.want)
		}
	}
	must[*models.Agent](t)(models.RemoveAgentLabel(e.ctx, e.db, admin, a.ID, "gpu"))
	_, err = models.RemoveAgentLabel(e.ctx, e.db, admin, a.ID, "gpu")
	wantKind(t, err, models.KindNotFound)
	must[*models.Agent](t)(models.RemoveAgentAnnotation(e.ctx, e.db, admin, a.ID, "zone"))
	_, err = models.RemoveAgentAnnotation(e.ctx, e.db, admin, a.ID, "zone")
	wantKind(t, err, models.KindNotFound)
	if l := must[map[uuid.UUID][]string](t)(models.LabelsByAgents(e.ctx, e.db, admin, []uuid.UUID{a.ID, b.ID}, nil)); !reflect.DeepEqual(l[a.ID], []string{"eu"}) || !reflect.DeepEqual(l[b.ID], []string{"eu"}) {
		t.Fatal(l)
	}
	// An agent sees its own labels, not another agent's.
	if l := must[map[uuid.UUID][]string](t)(models.LabelsByAgents(e.ctx, e.db, as, []uuid.UUID{a.ID, b.ID}, nil)); len(l[b.ID]) != 0 || len(l[a.ID]) != 1 {
		t.Fatal(l)
	}
}
