package models_test

import (
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"github.com/brokkr/brokkr/apikey"
	"github.com/brokkr/brokkr/models"
)

func TestCreateGenerator(t *testing.T) {
	e := setup(t)
	rl := int32(120)
	gk, err := models.CreateGenerator(e.ctx, e.db, admin, models.CreateGeneratorInput{Name: "ci", Description: ptr("CI"), RateLimitPerMinute: &rl})
	if err != nil {
		t.Fatal(err)
	}
	g := gk.Generator
	if g.ID == uuid.Nil || g.Name != "ci" || *g.Description != "CI" || !g.IsActive || *g.RateLimitPerMinute != 120 || g.CreatedAt.IsZero() {
		t.Fatalf("unexpected generator %+v", g)
	}
	if !apikey.Parse(gk.APIKey) {
		t.Fatalf("key %q is not a Brokkr key", gk.APIKey)
	}
	var stored string
	if err := e.db.NewRaw("SELECT pak_hash FROM generators WHERE id = ?", g.ID).Scan(e.ctx, &stored); err != nil {
		t.Fatal(err)
	}
	if stored != apikey.Hash(gk.APIKey) || strings.Contains(stored, gk.APIKey) {
		t.Fatalf("stored %q, want the hash of the key", stored)
	}
	sc, err := models.PrincipalForKeyHash(e.ctx, e.db, apikey.Hash(gk.APIKey))
	if err != nil || sc.Role != models.RoleGenerator || sc.GeneratorID != g.ID || sc.RateLimitPerMinute == nil || *sc.RateLimitPerMinute != 120 {
		t.Fatalf("principal %+v, %v", sc, err)
	}
}

func TestCreateGeneratorErrors(t *testing.T) {
	e := setup(t)
	g, _, gs := e.generator("taken")
	_, as := e.agent("a", true)

	_, err := models.CreateGenerator(e.ctx, e.db, gs, models.CreateGeneratorInput{Name: "x"})
	wantKind(t, err, models.KindForbidden)
	_, err = models.CreateGenerator(e.ctx, e.db, as, models.CreateGeneratorInput{Name: "x"})
	wantKind(t, err, models.KindForbidden)
	_, err = models.CreateGenerator(e.ctx, e.db, models.Scope{}, models.CreateGeneratorInput{Name: "x"})
	wantKind(t, err, models.KindForbidden)

	for _, name := range []string{"", "   ", "\t\n", strings.Repeat("n", 256)} {
		_, err = models.CreateGenerator(e.ctx, e.db, admin, models.CreateGeneratorInput{Name: name})
		wantField(t, err, "name")
	}
	_, err = models.CreateGenerator(e.ctx, e.db, admin, models.CreateGeneratorInput{Name: strings.Repeat("n", 255)})
	if err != nil {
		t.Fatalf("a 255-character name is valid: %v", err)
	}
	_, err = models.CreateGenerator(e.ctx, e.db, admin, models.CreateGeneratorInput{Name: "rl", RateLimitPerMinute: ptr(int32(0))})
	wantField(t, err, "rateLimitPerMinute")

	_, err = models.CreateGenerator(e.ctx, e.db, admin, models.CreateGeneratorInput{Name: "taken"})
	if de := wantKind(t, err, models.KindConflict); de.Constraint != "generators_name_live_key" {
		t.Fatalf("conflict names %q", de.Constraint)
	}
	// The name is free again once the holder is soft-deleted.
	must[*models.Generator](t)(models.DeleteGenerator(e.ctx, e.db, admin, g.ID, false))
	must[*models.GeneratorWithKey](t)(models.CreateGenerator(e.ctx, e.db, admin, models.CreateGeneratorInput{Name: "taken"}))
	// ... and restoring the old one now clashes.
	_, err = models.RestoreGenerator(e.ctx, e.db, admin, g.ID)
	wantKind(t, err, models.KindConflict)
}

func TestGetAndListGeneratorsByRole(t *testing.T) {
	e := setup(t)
	g1, _, s1 := e.generator("g1")
	g2, _, _ := e.generator("g2")
	_, as := e.agent("a", true)

	if got := must[*models.Generator](t)(models.GetGenerator(e.ctx, e.db, admin, g2.ID, false)); got.Name != "g2" {
		t.Fatalf("admin got %q", got.Name)
	}
	if got := must[*models.Generator](t)(models.GetGenerator(e.ctx, e.db, s1, g1.ID, false)); got.ID != g1.ID {
		t.Fatal("generator cannot read itself")
	}
	_, err := models.GetGenerator(e.ctx, e.db, s1, g2.ID, false)
	wantKind(t, err, models.KindNotFound)
	_, err = models.GetGenerator(e.ctx, e.db, as, g1.ID, false)
	wantKind(t, err, models.KindNotFound)
	_, err = models.GetGenerator(e.ctx, e.db, admin, uuid.New(), false)
	wantKind(t, err, models.KindNotFound)
	_, err = models.GetGenerator(e.ctx, e.db, s1, g1.ID, true)
	wantKind(t, err, models.KindForbidden)

	p := must[*models.Page[models.Generator]](t)(models.ListGenerators(e.ctx, e.db, admin, nil, models.ListArgs{}))
	if p.TotalCount != 2 || len(p.Nodes) != 2 || p.HasNextPage {
		t.Fatalf("admin list: %d nodes, total %d", len(p.Nodes), p.TotalCount)
	}
	p = must[*models.Page[models.Generator]](t)(models.ListGenerators(e.ctx, e.db, s1, nil, models.ListArgs{}))
	if p.TotalCount != 1 || p.Nodes[0].ID != g1.ID {
		t.Fatalf("generator list: %v", names(p.Nodes, func(g *models.Generator) string { return g.Name }))
	}
	p = must[*models.Page[models.Generator]](t)(models.ListGenerators(e.ctx, e.db, as, nil, models.ListArgs{}))
	if p.TotalCount != 0 || len(p.Nodes) != 0 || p.EndCursor != nil {
		t.Fatalf("agent list: %d", p.TotalCount)
	}
	p = must[*models.Page[models.Generator]](t)(models.ListGenerators(e.ctx, e.db, admin, &models.GeneratorFilter{Name: ptr("g2")}, models.ListArgs{}))
	if p.TotalCount != 1 || p.Nodes[0].ID != g2.ID {
		t.Fatal("name filter")
	}
	_, err = models.ListGenerators(e.ctx, e.db, s1, nil, models.ListArgs{IncludeDeleted: true})
	wantKind(t, err, models.KindForbidden)
}

func TestUpdateGenerator(t *testing.T) {
	e := setup(t)
	g, key, gs := e.generator("g")
	e.generator("other")
	up := must[*models.Generator](t)(models.UpdateGenerator(e.ctx, e.db, admin, models.UpdateGeneratorInput{
		ID: g.ID, Name: ptr("renamed"), Description: ptr("d"), IsActive: ptr(false), RateLimitPerMinute: graphql.OmittableOf(ptr(int32(7)))}))
	if up.Name != "renamed" || *up.Description != "d" || up.IsActive || *up.RateLimitPerMinute != 7 || !up.UpdatedAt.After(g.UpdatedAt) {
		t.Fatalf("update: %+v", up)
	}
	// Omitted, the limit stays; null, it goes back to the server default.
	up = must[*models.Generator](t)(models.UpdateGenerator(e.ctx, e.db, admin, models.UpdateGeneratorInput{ID: g.ID, Name: ptr("renamed")}))
	if up.RateLimitPerMinute == nil || *up.RateLimitPerMinute != 7 {
		t.Fatalf("an omitted rateLimitPerMinute changed: %v", up.RateLimitPerMinute)
	}
	up = must[*models.Generator](t)(models.UpdateGenerator(e.ctx, e.db, admin, models.UpdateGeneratorInput{ID: g.ID, RateLimitPerMinute: graphql.OmittableOf[*int32](nil)}))
	if up.RateLimitPerMinute != nil {
		t.Fatalf("rateLimitPerMinute null kept %d", *up.RateLimitPerMinute)
	}
	// An inactive generator's key no longer authenticates.
	_, err := models.PrincipalForKeyHash(e.ctx, e.db, apikey.Hash(key))
	wantKind(t, err, models.KindUnauthenticated)

	_, err = models.UpdateGenerator(e.ctx, e.db, admin, models.UpdateGeneratorInput{ID: g.ID, Name: ptr("other")})
	if de := wantKind(t, err, models.KindConflict); de.Constraint != "generators_name_live_key" {
		t.Fatal(de.Constraint)
	}
	_, err = models.UpdateGenerator(e.ctx, e.db, admin, models.UpdateGeneratorInput{ID: g.ID, Name: ptr("")})
	wantField(t, err, "name")
	_, err = models.UpdateGenerator(e.ctx, e.db, admin, models.UpdateGeneratorInput{ID: g.ID, RateLimitPerMinute: graphql.OmittableOf(ptr(int32(-1)))})
	wantField(t, err, "rateLimitPerMinute")
	_, err = models.UpdateGenerator(e.ctx, e.db, admin, models.UpdateGeneratorInput{ID: uuid.New(), Name: ptr("x")})
	wantKind(t, err, models.KindNotFound)
	_, err = models.UpdateGenerator(e.ctx, e.db, gs, models.UpdateGeneratorInput{ID: g.ID, Name: ptr("mine")})
	wantKind(t, err, models.KindForbidden)
	// No fields: the generator as it is.
	if same := must[*models.Generator](t)(models.UpdateGenerator(e.ctx, e.db, admin, models.UpdateGeneratorInput{ID: g.ID})); same.Name != "renamed" {
		t.Fatal(same.Name)
	}
}

func TestRotateGeneratorKey(t *testing.T) {
	e := setup(t)
	g, oldKey, gs := e.generator("g")
	g2, _, _ := e.generator("g2")
	_, as := e.agent("a", true)

	rk := must[*models.GeneratorWithKey](t)(models.RotateGeneratorKey(e.ctx, e.db, admin, g.ID))
	if rk.APIKey == oldKey || rk.Generator.ID != g.ID {
		t.Fatal("rotation returned the old key")
	}
	_, err := models.PrincipalForKeyHash(e.ctx, e.db, apikey.Hash(oldKey))
	wantKind(t, err, models.KindUnauthenticated)
	if sc := must[models.Scope](t)(models.PrincipalForKeyHash(e.ctx, e.db, apikey.Hash(rk.APIKey))); sc.GeneratorID != g.ID {
		t.Fatal("new key does not authenticate")
	}
	// The generator itself may rotate; another generator's id is NotFound.
	self := must[*models.GeneratorWithKey](t)(models.RotateGeneratorKey(e.ctx, e.db, gs, g.ID))
	if self.APIKey == rk.APIKey {
		t.Fatal("same key twice")
	}
	_, err = models.RotateGeneratorKey(e.ctx, e.db, gs, g2.ID)
	wantKind(t, err, models.KindNotFound)
	_, err = models.RotateGeneratorKey(e.ctx, e.db, as, g.ID)
	wantKind(t, err, models.KindForbidden)
}

func TestDeleteRestoreGenerator(t *testing.T) {
	e := setup(t)
	g, key, gs := e.generator("g")
	s := e.stack(g.ID, "s")
	e.object(s.ID, "a: 1")

	_, err := models.DeleteGenerator(e.ctx, e.db, gs, g.ID, false)
	wantKind(t, err, models.KindForbidden)

	del := must[*models.Generator](t)(models.DeleteGenerator(e.ctx, e.db, admin, g.ID, false))
	if del.DeletedAt == nil {
		t.Fatal("deleted_at not set")
	}
	_, err = models.GetGenerator(e.ctx, e.db, admin, g.ID, false)
	wantKind(t, err, models.KindNotFound)
	if got := must[*models.Generator](t)(models.GetGenerator(e.ctx, e.db, admin, g.ID, true)); got.DeletedAt == nil {
		t.Fatal("includeDeleted lost deleted_at")
	}
	_, err = models.GetStack(e.ctx, e.db, admin, s.ID, false)
	wantKind(t, err, models.KindNotFound) // cascade
	_, err = models.PrincipalForKeyHash(e.ctx, e.db, apikey.Hash(key))
	wantKind(t, err, models.KindUnauthenticated)
	_, err = models.DeleteGenerator(e.ctx, e.db, admin, g.ID, false)
	wantKind(t, err, models.KindNotFound) // already deleted
	p := must[*models.Page[models.Generator]](t)(models.ListGenerators(e.ctx, e.db, admin, nil, models.ListArgs{IncludeDeleted: true}))
	if p.TotalCount != 1 {
		t.Fatal("includeDeleted list")
	}

	_, err = models.RestoreGenerator(e.ctx, e.db, gs, g.ID)
	wantKind(t, err, models.KindForbidden)
	back := must[*models.Generator](t)(models.RestoreGenerator(e.ctx, e.db, admin, g.ID))
	if back.DeletedAt != nil {
		t.Fatal("still deleted")
	}
	must[*models.Stack](t)(models.GetStack(e.ctx, e.db, admin, s.ID, false)) // cascade restored
	_, err = models.RestoreGenerator(e.ctx, e.db, admin, g.ID)
	wantField(t, err, "id")
	_, err = models.RestoreGenerator(e.ctx, e.db, admin, uuid.New())
	wantKind(t, err, models.KindNotFound)

	_, err = models.DeleteGenerator(e.ctx, e.db, admin, g.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := e.db.NewRaw("SELECT (SELECT count(*) FROM generators) + (SELECT count(*) FROM stacks) + (SELECT count(*) FROM deployment_objects)").Scan(e.ctx, &n); err != nil || n != 0 {
		t.Fatalf("hard delete left %d rows (%v)", n, err)
	}
	_, err = models.DeleteGenerator(e.ctx, e.db, admin, g.ID, true)
	wantKind(t, err, models.KindNotFound)
}
