package models_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

func TestValidateYAML(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{
		"a: 1",
		"apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Secret\n",
		"---\n---\nkind: Pod\n",   // empty documents around a real one
		"- 1\n- 2\n",              // a sequence
		"just a string",           // a scalar document
		"# comment\nkey: value\n", // comments
	} {
		if err := models.ValidateYAML(ok); err != nil {
			t.Errorf("ValidateYAML(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{
		"a: [",
		"",
		"   \n\t\n",
		"---",
		"---\n---\n",
		"# only a comment\n",
		"~",
		"a: 1\n---\nb: [\n",
		"key: \"unterminated",
		"\xff\xfe",
	} {
		err := models.ValidateYAML(bad)
		wantField(t, err, "yamlContent")
	}
}

func TestCreateDeploymentObject(t *testing.T) {
	e := setup(t)
	g, _, gs := e.generator("g")
	s := e.stack(g.ID, "s")
	_, as := e.agent("a", true)

	content := "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: v1\nkind: Secret\n"
	d := must[*models.DeploymentObject](t)(models.CreateDeploymentObject(e.ctx, e.db, gs, models.CreateDeploymentObjectInput{StackID: s.ID, YamlContent: content}))
	sum := sha256.Sum256([]byte(content))
	if d.YamlChecksum != hex.EncodeToString(sum[:]) || d.YamlChecksum != models.Checksum(content) {
		t.Fatalf("checksum %s", d.YamlChecksum)
	}
	if d.SequenceID == 0 || d.StackID != s.ID || d.YamlContent != content || d.IsDeletionMarker || d.SubmittedAt.IsZero() {
		t.Fatalf("object %+v", d)
	}
	d2 := e.object(s.ID, "b: 2")
	if d2.SequenceID <= d.SequenceID {
		t.Fatalf("sequence did not increase: %d then %d", d.SequenceID, d2.SequenceID)
	}
	got := must[*models.DeploymentObject](t)(models.GetDeploymentObject(e.ctx, e.db, gs, d.ID, false))
	if got.SequenceID != d.SequenceID || got.YamlContent != content {
		t.Fatalf("read back %+v", got)
	}

	_, err := models.CreateDeploymentObject(e.ctx, e.db, gs, models.CreateDeploymentObjectInput{StackID: s.ID, YamlContent: "a: ["})
	wantField(t, err, "yamlContent")
	_, err = models.CreateDeploymentObject(e.ctx, e.db, gs, models.CreateDeploymentObjectInput{StackID: s.ID, YamlContent: "---\n"})
	wantField(t, err, "yamlContent")
	_, err = models.CreateDeploymentObject(e.ctx, e.db, gs, models.CreateDeploymentObjectInput{StackID: uuid.New(), YamlContent: "a: 1"})
	wantKind(t, err, models.KindNotFound)
	_, err = models.CreateDeploymentObject(e.ctx, e.db, as, models.CreateDeploymentObjectInput{StackID: s.ID, YamlContent: "a: 1"})
	wantKind(t, err, models.KindForbidden)
	_, err = models.GetDeploymentObject(e.ctx, e.db, admin, uuid.New(), false)
	wantKind(t, err, models.KindNotFound)
}

func TestDeploymentObjectsAreImmutable(t *testing.T) {
	e := setup(t)
	g, _, _ := e.generator("g")
	s := e.stack(g.ID, "s")
	d := e.object(s.ID, "a: 1")
	// Whoever writes, the database refuses; Translate names it IMMUTABLE.
	_, err := e.db.NewUpdate().Model((*models.DeploymentObject)(nil)).
		Set("yaml_content = ?", "a: 2").Set("yaml_checksum = ?", models.Checksum("a: 2")).
		Where("id = ?", d.ID).Exec(e.ctx)
	if err == nil {
		t.Fatal("the database accepted a content change")
	}
	if k := models.ErrorKind(models.Translate(err, "deployment object")); k != models.KindImmutable {
		t.Fatalf("translated to %s: %v", k, err)
	}
	// A check violation by a raw writer is Invalid naming the field.
	_, err = e.db.ExecContext(e.ctx, "INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum) VALUES (?, 'x: 1', 'nope')", s.ID)
	de := wantKind(t, models.Translate(err, "deployment object"), models.KindInvalid)
	if de.Field != "yamlChecksum" || de.Constraint != "deployment_objects_yaml_checksum_check" {
		t.Fatalf("field %q constraint %q", de.Field, de.Constraint)
	}
	got := must[*models.DeploymentObject](t)(models.GetDeploymentObject(e.ctx, e.db, admin, d.ID, false))
	if got.YamlContent != "a: 1" {
		t.Fatal("content changed")
	}
}

func TestListDeploymentObjects(t *testing.T) {
	e := setup(t)
	g, _, gs := e.generator("g")
	s := e.stack(g.ID, "s")
	other := e.stack(g.ID, "other")
	var seqs []int64
	for _, c := range []string{"a: 1", "a: 2", "a: 3"} {
		seqs = append(seqs, e.object(s.ID, c).SequenceID)
	}
	e.object(other.ID, "b: 1")

	p := must[*models.Page[models.DeploymentObject]](t)(models.ListDeploymentObjects(e.ctx, e.db, gs, &models.DeploymentObjectFilter{StackID: &s.ID}, models.ListArgs{}))
	if p.TotalCount != 3 || len(p.Nodes) != 3 {
		t.Fatalf("%d objects", p.TotalCount)
	}
	for i, n := range p.Nodes {
		if n.SequenceID != seqs[2-i] {
			t.Fatalf("not sequence DESC: %d at %d", n.SequenceID, i)
		}
	}
	// Markers only / no markers.
	must[*models.Stack](t)(models.DeleteStack(e.ctx, e.db, admin, other.ID, false))
	p = must[*models.Page[models.DeploymentObject]](t)(models.ListDeploymentObjects(e.ctx, e.db, admin, &models.DeploymentObjectFilter{IsDeletionMarker: ptr(true)}, models.ListArgs{}))
	if p.TotalCount != 1 || !p.Nodes[0].IsDeletionMarker || p.Nodes[0].StackID != other.ID {
		t.Fatalf("markers: %d", p.TotalCount)
	}
	p = must[*models.Page[models.DeploymentObject]](t)(models.ListDeploymentObjects(e.ctx, e.db, admin, &models.DeploymentObjectFilter{IsDeletionMarker: ptr(false)}, models.ListArgs{}))
	if p.TotalCount != 3 {
		t.Fatalf("live non-markers: %d", p.TotalCount)
	}
	p = must[*models.Page[models.DeploymentObject]](t)(models.ListDeploymentObjects(e.ctx, e.db, admin, nil, models.ListArgs{IncludeDeleted: true}))
	if p.TotalCount != 5 {
		t.Fatalf("with deleted: %d", p.TotalCount)
	}
}

func TestLatestAndRollback(t *testing.T) {
	e := setup(t)
	g, _, gs := e.generator("g")
	g2, _, gs2 := e.generator("g2")
	s := e.stack(g.ID, "s")
	foreign := e.stack(g2.ID, "f")
	fo := e.object(foreign.ID, "f: 1")
	empty := e.stack(g.ID, "empty")

	if d, err := models.LatestDeploymentObject(e.ctx, e.db, gs, empty.ID); err != nil || d != nil {
		t.Fatalf("empty stack: %v %v", d, err)
	}
	v1 := e.object(s.ID, "v: 1")
	v2 := e.object(s.ID, "v: 2")
	if d := must[*models.DeploymentObject](t)(models.LatestDeploymentObject(e.ctx, e.db, gs, s.ID)); d.ID != v2.ID {
		t.Fatal("latest is not v2")
	}
	_, err := models.LatestDeploymentObject(e.ctx, e.db, gs2, s.ID)
	wantKind(t, err, models.KindNotFound)

	rb := must[*models.DeploymentObject](t)(models.RollbackStack(e.ctx, e.db, gs, s.ID, v1.ID))
	if rb.ID == v1.ID || rb.YamlContent != "v: 1" || rb.YamlChecksum != v1.YamlChecksum || rb.SequenceID <= v2.SequenceID {
		t.Fatalf("rollback %+v", rb)
	}
	if d := must[*models.DeploymentObject](t)(models.LatestDeploymentObject(e.ctx, e.db, gs, s.ID)); d.ID != rb.ID {
		t.Fatal("latest is not the rollback")
	}
	// The object must belong to the stack, be visible, live, and not a marker.
	_, err = models.RollbackStack(e.ctx, e.db, gs, s.ID, fo.ID)
	wantKind(t, err, models.KindNotFound)
	_, err = models.RollbackStack(e.ctx, e.db, gs2, s.ID, v1.ID)
	wantKind(t, err, models.KindNotFound)
	_, err = models.RollbackStack(e.ctx, e.db, gs, empty.ID, v1.ID)
	wantKind(t, err, models.KindNotFound)
	must[*models.DeploymentObject](t)(models.DeleteDeploymentObject(e.ctx, e.db, gs, v2.ID))
	_, err = models.RollbackStack(e.ctx, e.db, gs, s.ID, v2.ID)
	wantKind(t, err, models.KindNotFound)
	must[*models.Stack](t)(models.DeleteStack(e.ctx, e.db, admin, empty.ID, false))
	must[*models.Stack](t)(models.RestoreStack(e.ctx, e.db, admin, empty.ID))
	var marker uuid.UUID
	if err := e.db.NewRaw("SELECT id FROM deployment_objects WHERE stack_id = ? AND is_deletion_marker", empty.ID).Scan(e.ctx, &marker); err != nil {
		t.Fatal(err)
	}
	// (the restored stack retired its marker, so it is not live either)
	_, err = models.RollbackStack(e.ctx, e.db, admin, empty.ID, marker)
	wantKind(t, err, models.KindNotFound)
	must[*models.Stack](t)(models.DeleteStack(e.ctx, e.db, admin, s.ID, false))
	_, err = models.RollbackStack(e.ctx, e.db, admin, s.ID, v1.ID)
	wantKind(t, err, models.KindNotFound)
}

func TestRollbackToMarkerIsInvalid(t *testing.T) {
	e := setup(t)
	g, _, _ := e.generator("g")
	s := e.stack(g.ID, "s")
	e.object(s.ID, "v: 1")
	// A live marker under a live stack only exists through raw writes.
	var marker uuid.UUID
	if err := e.db.NewRaw(`INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum, is_deletion_marker)
		VALUES (?, '', encode(sha256(''::bytea), 'hex'), true) RETURNING id`, s.ID).Scan(e.ctx, &marker); err != nil {
		t.Fatal(err)
	}
	_, err := models.RollbackStack(e.ctx, e.db, admin, s.ID, marker)
	wantField(t, err, "toDeploymentObjectId")
}

func TestDeleteDeploymentObject(t *testing.T) {
	e := setup(t)
	g, _, gs := e.generator("g")
	_, _, gs2 := e.generator("g2")
	s := e.stack(g.ID, "s")
	d := e.object(s.ID, "a: 1")
	ag, as := e.agent("a", true)
	e.target(ag.ID, s.ID)

	_, err := models.DeleteDeploymentObject(e.ctx, e.db, gs2, d.ID)
	wantKind(t, err, models.KindNotFound)
	_, err = models.DeleteDeploymentObject(e.ctx, e.db, as, d.ID)
	wantKind(t, err, models.KindForbidden)
	del := must[*models.DeploymentObject](t)(models.DeleteDeploymentObject(e.ctx, e.db, gs, d.ID))
	if del.DeletedAt == nil || del.YamlContent != "a: 1" || del.SequenceID != d.SequenceID {
		t.Fatalf("deleted %+v", del)
	}
	_, err = models.GetDeploymentObject(e.ctx, e.db, gs, d.ID, false)
	wantKind(t, err, models.KindNotFound)
	_, err = models.GetDeploymentObject(e.ctx, e.db, gs, d.ID, true)
	wantKind(t, err, models.KindForbidden)
	if got := must[*models.DeploymentObject](t)(models.GetDeploymentObject(e.ctx, e.db, admin, d.ID, true)); got.DeletedAt == nil {
		t.Fatal("admin includeDeleted")
	}
	_, err = models.DeleteDeploymentObject(e.ctx, e.db, gs, d.ID)
	wantKind(t, err, models.KindNotFound)
}
