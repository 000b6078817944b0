package models_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

func TestCreateStack(t *testing.T) {
	e := setup(t)
	g, _, gs := e.generator("g")
	g2, _, _ := e.generator("g2")
	_, as := e.agent("a", true)

	s := must[*models.Stack](t)(models.CreateStack(e.ctx, e.db, gs, models.CreateStackInput{
		Name: "web", Description: ptr("d"), Labels: []string{"prod", "eu"},
		Annotations: []*models.AnnotationInput{{Key: "team", Value: "ops"}, {Key: "tier", Value: "1"}}}))
	if s.GeneratorID != g.ID || s.Name != "web" || *s.Description != "d" {
		t.Fatalf("stack %+v", s)
	}
	labels := must[map[uuid.UUID][]string](t)(models.LabelsByStacks(e.ctx, e.db, gs, []uuid.UUID{s.ID}, nil))
	if !reflect.DeepEqual(labels[s.ID], []string{"eu", "prod"}) {
		t.Fatalf("labels %v", labels)
	}
	ann := must[map[uuid.UUID][]*models.Annotation](t)(models.AnnotationsByStacks(e.ctx, e.db, gs, []uuid.UUID{s.ID}, nil))
	if len(ann[s.ID]) != 2 || *ann[s.ID][0] != (models.Annotation{Key: "team", Value: "ops"}) {
		t.Fatalf("annotations %v", ann[s.ID])
	}

	// A generator's own id may be given; another generator's is NotFound.
	must[*models.Stack](t)(models.CreateStack(e.ctx, e.db, gs, models.CreateStackInput{GeneratorID: &g.ID, Name: "api"}))
	_, err := models.CreateStack(e.ctx, e.db, gs, models.CreateStackInput{GeneratorID: &g2.ID, Name: "x"})
	wantKind(t, err, models.KindNotFound)
	// Admins must name the generator; an unknown one is NotFound.
	_, err = models.CreateStack(e.ctx, e.db, admin, models.CreateStackInput{Name: "x"})
	wantField(t, err, "generatorId")
	_, err = models.CreateStack(e.ctx, e.db, admin, models.CreateStackInput{GeneratorID: ptr(uuid.New()), Name: "x"})
	wantKind(t, err, models.KindNotFound)
	_, err = models.CreateStack(e.ctx, e.db, as, models.CreateStackInput{Name: "x"})
	wantKind(t, err, models.KindForbidden)

	// Same name: Conflict within a generator, fine in another.
	_, err = models.CreateStack(e.ctx, e.db, gs, models.CreateStackInput{Name: "web"})
	if de := wantKind(t, err, models.KindConflict); de.Constraint != "stacks_generator_id_name_live_key" {
		t.Fatal(de.Constraint)
	}
	must[*models.Stack](t)(models.CreateStack(e.ctx, e.db, admin, models.CreateStackInput{GeneratorID: &g2.ID, Name: "web"}))

	for _, c := range []struct {
		in    models.CreateStackInput
		field string
	}{
		{models.CreateStackInput{Name: ""}, "name"},
		{models.CreateStackInput{Name: strings.Repeat("x", 256)}, "name"},
		{models.CreateStackInput{Name: "l1", Labels: []string{"has space"}}, "labels"},
		{models.CreateStackInput{Name: "l2", Labels: []string{""}}, "labels"},
		{models.CreateStackInput{Name: "l3", Labels: []string{strings.Repeat("l", 65)}}, "labels"},
		{models.CreateStackInput{Name: "l4", Labels: []string{"a", "a"}}, "labels"},
		{models.CreateStackInput{Name: "l5", Labels: []string{"nbsp\u00a0x"}}, "labels"},
		{models.CreateStackInput{Name: "a1", Annotations: []*models.AnnotationInput{{Key: "k", Value: "v v"}}}, "annotations"},
		{models.CreateStackInput{Name: "a2", Annotations: []*models.AnnotationInput{{Key: "", Value: "v"}}}, "annotations"},
		{models.CreateStackInput{Name: "a3", Annotations: []*models.AnnotationInput{{Key: "k", Value: "1"}, {Key: "k", Value: "2"}}}, "annotations"},
	} {
		_, err := models.CreateStack(e.ctx, e.db, gs, c.in)
		wantField(t, err, c.field)
	}
	// Nothing of the refused inputs was written.
	p := must[*models.Page[models.Stack]](t)(models.ListStacks(e.ctx, e.db, gs, nil, models.ListArgs{}))
	if p.TotalCount != 2 {
		t.Fatalf("want 2 stacks, have %d", p.TotalCount)
	}
}

func TestCreateStackIsOneTransaction(t *testing.T) {
	e := setup(t)
	g, _, _ := e.generator("g")
	// A label the database refuses after the stack row was inserted (a
	// trigger added for the test) must take the stack with it.
	if _, err := e.db.ExecContext(e.ctx, `CREATE FUNCTION refuse_label() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.label = 'refused' THEN RAISE check_violation USING CONSTRAINT = 'stack_labels_label_check'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER refuse_label BEFORE INSERT ON stack_labels FOR EACH ROW EXECUTE FUNCTION refuse_label()`); err != nil {
		t.Fatal(err)
	}
	_, err := models.CreateStack(e.ctx, e.db, admin, models.CreateStackInput{GeneratorID: &g.ID, Name: "s", Labels: []string{"ok", "refused"}})
	wantField(t, err, "label")
	var n int
	if err := e.db.NewRaw("SELECT count(*) FROM stacks").Scan(e.ctx, &n); err != nil || n != 0 {
		t.Fatalf("%d stacks after a failed create (%v)", n, err)
	}
}

func TestStackVisibility(t *testing.T) {
	e := setup(t)
	g1, _, s1 := e.generator("g1")
	g2, _, s2 := e.generator("g2")
	a1 := e.stack(g1.ID, "a1")
	b1 := e.stack(g2.ID, "b1")
	ag, as := e.agent("agent", true)
	_, inactive := e.agent("idle", false)
	e.target(ag.ID, a1.ID)
	e.target(inactive.AgentID, a1.ID)

	must[*models.Stack](t)(models.GetStack(e.ctx, e.db, s1, a1.ID, false))
	_, err := models.GetStack(e.ctx, e.db, s1, b1.ID, false)
	wantKind(t, err, models.KindNotFound)
	_, err = models.GetStack(e.ctx, e.db, s2, a1.ID, false)
	wantKind(t, err, models.KindNotFound)
	must[*models.Stack](t)(models.GetStack(e.ctx, e.db, as, a1.ID, false))
	_, err = models.GetStack(e.ctx, e.db, as, b1.ID, false)
	wantKind(t, err, models.KindNotFound)
	_, err = models.GetStack(e.ctx, e.db, inactive, a1.ID, false)
	wantKind(t, err, models.KindNotFound)

	// Writes to a foreign stack are NotFound, never Forbidden.
	_, err = models.UpdateStack(e.ctx, e.db, s2, models.UpdateStackInput{ID: a1.ID, Name: ptr("x")})
	wantKind(t, err, models.KindNotFound)
	_, err = models.DeleteStack(e.ctx, e.db, s2, a1.ID, false)
	wantKind(t, err, models.KindNotFound)
	_, err = models.AddStackLabel(e.ctx, e.db, s2, a1.ID, "x")
	wantKind(t, err, models.KindNotFound)
	_, err = models.SetStackAnnotation(e.ctx, e.db, s2, a1.ID, "k", "v")
	wantKind(t, err, models.KindNotFound)
	_, err = models.CreateDeploymentObject(e.ctx, e.db, s2, models.CreateDeploymentObjectInput{StackID: a1.ID, YamlContent: "a: 1"})
	wantKind(t, err, models.KindNotFound)
	// Agents may read but not write.
	_, err = models.UpdateStack(e.ctx, e.db, as, models.UpdateStackInput{ID: a1.ID, Name: ptr("x")})
	wantKind(t, err, models.KindForbidden)
	_, err = models.AddStackLabel(e.ctx, e.db, as, a1.ID, "x")
	wantKind(t, err, models.KindForbidden)

	list := func(sc models.Scope) []string {
		p := must[*models.Page[models.Stack]](t)(models.ListStacks(e.ctx, e.db, sc, nil, models.ListArgs{}))
		return names(p.Nodes, func(s *models.Stack) string { return s.Name })
	}
	if got := list(s1); !reflect.DeepEqual(got, []string{"a1"}) {
		t.Fatalf("g1 sees %v", got)
	}
	if got := list(s2); !reflect.DeepEqual(got, []string{"b1"}) {
		t.Fatalf("g2 sees %v", got)
	}
	if got := list(as); !reflect.DeepEqual(got, []string{"a1"}) {
		t.Fatalf("agent sees %v", got)
	}
	if got := list(inactive); len(got) != 0 {
		t.Fatalf("inactive agent sees %v", got)
	}
	if got := list(admin); len(got) != 2 {
		t.Fatalf("admin sees %v", got)
	}
	// A filter by another generator's id finds nothing.
	p := must[*models.Page[models.Stack]](t)(models.ListStacks(e.ctx, e.db, s1, &models.StackFilter{GeneratorID: &g2.ID}, models.ListArgs{}))
	if p.TotalCount != 0 {
		t.Fatal("filter crossed the tenant boundary")
	}
}

func TestUpdateStack(t *testing.T) {
	e := setup(t)
	g, _, gs := e.generator("g")
	s := e.stack(g.ID, "s")
	e.stack(g.ID, "t")
	up := must[*models.Stack](t)(models.UpdateStack(e.ctx, e.db, gs, models.UpdateStackInput{ID: s.ID, Name: ptr("s2"), Description: ptr("d")}))
	if up.Name != "s2" || *up.Description != "d" {
		t.Fatalf("%+v", up)
	}
	_, err := models.UpdateStack(e.ctx, e.db, gs, models.UpdateStackInput{ID: s.ID, Name: ptr("t")})
	wantKind(t, err, models.KindConflict)
	_, err = models.UpdateStack(e.ctx, e.db, gs, models.UpdateStackInput{ID: s.ID, Name: ptr(" ")})
	wantField(t, err, "name")
	_, err = models.UpdateStack(e.ctx, e.db, gs, models.UpdateStackInput{ID: uuid.New(), Name: ptr("z")})
	wantKind(t, err, models.KindNotFound)
	if same := must[*models.Stack](t)(models.UpdateStack(e.ctx, e.db, gs, models.UpdateStackInput{ID: s.ID})); same.Name != "s2" {
		t.Fatal(same.Name)
	}
}

func TestDeleteRestoreStack(t *testing.T) {
	e := setup(t)
	g, _, gs := e.generator("g")
	s := e.stack(g.ID, "s")
	o1 := e.object(s.ID, "a: 1")
	o2 := e.object(s.ID, "a: 2")

	_, err := models.DeleteStack(e.ctx, e.db, gs, s.ID, true)
	wantKind(t, err, models.KindForbidden) // hard deletes are for admins
	del := must[*models.Stack](t)(models.DeleteStack(e.ctx, e.db, gs, s.ID, false))
	if del.DeletedAt == nil {
		t.Fatal("not deleted")
	}
	_, err = models.GetStack(e.ctx, e.db, gs, s.ID, false)
	wantKind(t, err, models.KindNotFound)
	_, err = models.GetDeploymentObject(e.ctx, e.db, admin, o2.ID, false)
	wantKind(t, err, models.KindNotFound)
	m := must[map[uuid.UUID]*models.DeploymentObject](t)(models.LatestDeploymentObjectsByStacks(e.ctx, e.db, admin, []uuid.UUID{s.ID}))
	if mk := m[s.ID]; mk == nil || !mk.IsDeletionMarker || mk.SequenceID <= o2.SequenceID || mk.YamlContent != "" {
		t.Fatalf("marker %+v", mk)
	}
	_, err = models.UpdateStack(e.ctx, e.db, gs, models.UpdateStackInput{ID: s.ID, Name: ptr("x")})
	wantKind(t, err, models.KindNotFound)
	_, err = models.CreateDeploymentObject(e.ctx, e.db, admin, models.CreateDeploymentObjectInput{StackID: s.ID, YamlContent: "a: 3"})
	wantKind(t, err, models.KindNotFound)

	_, err = models.RestoreStack(e.ctx, e.db, gs, s.ID)
	wantKind(t, err, models.KindForbidden)
	back := must[*models.Stack](t)(models.RestoreStack(e.ctx, e.db, admin, s.ID))
	if back.DeletedAt != nil {
		t.Fatal("still deleted")
	}
	must[*models.DeploymentObject](t)(models.GetDeploymentObject(e.ctx, e.db, gs, o1.ID, false))
	m = must[map[uuid.UUID]*models.DeploymentObject](t)(models.LatestDeploymentObjectsByStacks(e.ctx, e.db, gs, []uuid.UUID{s.ID}))
	if re := m[s.ID]; re.IsDeletionMarker || re.YamlContent != "a: 2" || re.ID == o2.ID {
		t.Fatalf("restore did not re-publish the latest content: %+v", re)
	}
	_, err = models.RestoreStack(e.ctx, e.db, admin, s.ID)
	wantField(t, err, "id")

	// Hard delete removes the stack and everything under it.
	must[*models.Stack](t)(models.DeleteStack(e.ctx, e.db, admin, s.ID, true))
	var n int
	if err := e.db.NewRaw("SELECT (SELECT count(*) FROM stacks) + (SELECT count(*) FROM deployment_objects)").Scan(e.ctx, &n); err != nil || n != 0 {
		t.Fatalf("%d rows left (%v)", n, err)
	}
	_, err = models.DeleteStack(e.ctx, e.db, admin, s.ID, true)
	wantKind(t, err, models.KindNotFound)
}

func TestStackLabelsAndAnnotations(t *testing.T) {
	e := setup(t)
	g, _, gs := e.generator("g")
	s := e.stack(g.ID, "s")
	labels := func() []string {
		return must[map[uuid.UUID][]string](t)(models.LabelsByStacks(e.ctx, e.db, gs, []uuid.UUID{s.ID}, nil))[s.ID]
	}
	annotations := func() map[string]string {
		out := map[string]string{}
		for _, a := range must[map[uuid.UUID][]*models.Annotation](t)(models.AnnotationsByStacks(e.ctx, e.db, gs, []uuid.UUID{s.ID}, nil))[s.ID] {
			out[a.Key] = a.Value
		}
		return out
	}

	got := must[*models.Stack](t)(models.AddStackLabel(e.ctx, e.db, gs, s.ID, "prod"))
	if got.ID != s.ID {
		t.Fatal("AddStackLabel returned another stack")
	}
	_, err := models.AddStackLabel(e.ctx, e.db, gs, s.ID, "prod")
	if de := wantKind(t, err, models.KindConflict); de.Constraint != "stack_labels_stack_id_label_key" {
		t.Fatal(de.Constraint)
	}
	_, err = models.AddStackLabel(e.ctx, e.db, gs, s.ID, "two words")
	wantField(t, err, "label")
	must[*models.Stack](t)(models.AddStackLabel(e.ctx, e.db, gs, s.ID, "eu"))
	if l := labels(); !reflect.DeepEqual(l, []string{"eu", "prod"}) {
		t.Fatal(l)
	}
	must[*models.Stack](t)(models.RemoveStackLabel(e.ctx, e.db, gs, s.ID, "prod"))
	_, err = models.RemoveStackLabel(e.ctx, e.db, gs, s.ID, "prod")
	wantKind(t, err, models.KindNotFound)
	if l := labels(); !reflect.DeepEqual(l, []string{"eu"}) {
		t.Fatal(l)
	}

	must[*models.Stack](t)(models.SetStackAnnotation(e.ctx, e.db, gs, s.ID, "team", "a"))
	must[*models.Stack](t)(models.SetStackAnnotation(e.ctx, e.db, gs, s.ID, "team", "b")) // upsert
	must[*models.Stack](t)(models.SetStackAnnotation(e.ctx, e.db, gs, s.ID, "tier", "1"))
	if a := annotations(); !reflect.DeepEqual(a, map[string]string{"team": "b", "tier": "1"}) {
		t.Fatal(a)
	}
	_, err = models.SetStackAnnotation(e.ctx, e.db, gs, s.ID, "k", "")
	wantField(t, err, "value")
	_, err = models.SetStackAnnotation(e.ctx, e.db, gs, s.ID, "k\t", "v")
	wantField(t, err, "key")
	must[*models.Stack](t)(models.RemoveStackAnnotation(e.ctx, e.db, gs, s.ID, "team"))
	_, err = models.RemoveStackAnnotation(e.ctx, e.db, gs, s.ID, "team")
	wantKind(t, err, models.KindNotFound)
	if a := annotations(); !reflect.DeepEqual(a, map[string]string{"tier": "1"}) {
		t.Fatal(a)
	}
	_, err = models.AddStackLabel(e.ctx, e.db, gs, uuid.New(), "x")
	wantKind(t, err, models.KindNotFound)
}

func TestStackFilters(t *testing.T) {
	e := setup(t)
	g, _, gs := e.generator("g")
	mk := func(name string, labels []string, ann map[string]string) {
		var as []*models.AnnotationInput
		for k, v := range ann {
			as = append(as, &models.AnnotationInput{Key: k, Value: v})
		}
		must[*models.Stack](t)(models.CreateStack(e.ctx, e.db, gs, models.CreateStackInput{Name: name, Labels: labels, Annotations: as}))
	}
	mk("a", []string{"prod", "eu"}, map[string]string{"team": "x", "tier": "1"})
	mk("b", []string{"prod"}, map[string]string{"team": "x"})
	mk("c", []string{"eu"}, map[string]string{"team": "y", "tier": "1"})
	mk("d", nil, nil)
	for _, c := range []struct {
		f    models.StackFilter
		want []string
	}{
		{models.StackFilter{Labels: []string{"prod"}}, []string{"a", "b"}},
		{models.StackFilter{Labels: []string{"prod", "eu"}}, []string{"a"}},
		{models.StackFilter{Labels: []string{"nope"}}, []string{}},
		{models.StackFilter{Annotations: []*models.AnnotationInput{{Key: "team", Value: "x"}}}, []string{"a", "b"}},
		{models.StackFilter{Annotations: []*models.AnnotationInput{{Key: "team", Value: "x"}, {Key: "tier", Value: "1"}}}, []string{"a"}},
		{models.StackFilter{Annotations: []*models.AnnotationInput{{Key: "tier", Value: "1"}}, Labels: []string{"eu"}}, []string{"a", "c"}},
		{models.StackFilter{Labels: []string{"prod", "prod"}}, []string{"a", "b"}},
		{models.StackFilter{Annotations: []*models.AnnotationInput{{Key: "team", Value: "x"}, {Key: "team", Value: "x"}}}, []string{"a", "b"}},
		{models.StackFilter{Annotations: []*models.AnnotationInput{{Key: "team", Value: "x"}, {Key: "team", Value: "y"}}}, []string{}},
		{models.StackFilter{Name: ptr("d")}, []string{"d"}},
		{models.StackFilter{GeneratorID: &g.ID, Labels: []string{"eu"}}, []string{"a", "c"}},
	} {
		p := must[*models.Page[models.Stack]](t)(models.ListStacks(e.ctx, e.db, gs, &c.f, models.ListArgs{}))
		got := names(p.Nodes, func(s *models.Stack) string { return s.Name })
		if !reflect.DeepEqual(got, c.want) || p.TotalCount != len(c.want) {
			t.Errorf("filter %+v: got %v (total %d), want %v", c.f, got, p.TotalCount, c.want)
		}
	}
	_ = fmt.Sprint
}
