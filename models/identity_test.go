package models_test

import (
	"sync"
	"testing"
	"time"

	"github.com/brokkr/brokkr/apikey"
	"github.com/brokkr/brokkr/models"
)

func TestAdminKeyLifecycle(t *testing.T) {
	e := setup(t)
	key, created, err := models.EnsureAdminKey(e.ctx, e.db)
	if err != nil || !created || !apikey.Parse(key) {
		t.Fatalf("first start: %q %v %v", key, created, err)
	}
	sc := must[models.Scope](t)(models.PrincipalForKeyHash(e.ctx, e.db, apikey.Hash(key)))
	if !sc.IsAdmin() {
		t.Fatalf("admin key authenticates as %+v", sc)
	}
	// Later starts create nothing and reveal nothing.
	again, created, err := models.EnsureAdminKey(e.ctx, e.db)
	if err != nil || created || again != "" {
		t.Fatalf("second start: %q %v %v", again, created, err)
	}
	rotated := must[string](t)(models.RotateAdminKey(e.ctx, e.db))
	if rotated == key {
		t.Fatal("rotation kept the key")
	}
	_, err = models.PrincipalForKeyHash(e.ctx, e.db, apikey.Hash(key))
	wantKind(t, err, models.KindUnauthenticated)
	must[models.Scope](t)(models.PrincipalForKeyHash(e.ctx, e.db, apikey.Hash(rotated)))
	if _, created, _ := models.EnsureAdminKey(e.ctx, e.db); created {
		t.Fatal("a rotated key counts as no key")
	}
	var live int
	if err := e.db.NewRaw("SELECT count(*) FROM admin_keys WHERE deleted_at IS NULL").Scan(e.ctx, &live); err != nil || live != 1 {
		t.Fatalf("%d live admin keys", live)
	}
}

func TestEnsureAdminKeyRace(t *testing.T) {
	e := setup(t)
	var wg sync.WaitGroup
	results := make([]bool, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, created, err := models.EnsureAdminKey(e.ctx, e.db)
			if err != nil {
				t.Error(err)
			}
			results[i] = created
		}()
	}
	wg.Wait()
	n := 0
	for _, c := range results {
		if c {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d replicas created the admin key", n)
	}
}

func TestPrincipalForKeyHashRejects(t *testing.T) {
	e := setup(t)
	for _, h := range []string{"", "abc", apikey.Hash("brokkr_nope")[:63] + "G", apikey.Hash("unknown")} {
		_, err := models.PrincipalForKeyHash(e.ctx, e.db, h)
		wantKind(t, err, models.KindUnauthenticated)
	}
	// A key's plaintext is not its hash.
	gk := must[*models.GeneratorWithKey](t)(models.CreateGenerator(e.ctx, e.db, admin, models.CreateGeneratorInput{Name: "g"}))
	_, err := models.PrincipalForKeyHash(e.ctx, e.db, gk.APIKey)
	wantKind(t, err, models.KindUnauthenticated)
}

func TestTouchGeneratorActivity(t *testing.T) {
	e := setup(t)
	g, _, _ := e.generator("g")
	if g.LastActiveAt != nil {
		t.Fatal("new generator was active")
	}
	if err := models.TouchGeneratorActivity(e.ctx, e.db, g.ID); err != nil {
		t.Fatal(err)
	}
	first := must[*models.Generator](t)(models.GetGenerator(e.ctx, e.db, admin, g.ID, false))
	if first.LastActiveAt == nil || time.Since(*first.LastActiveAt) > time.Minute {
		t.Fatalf("last_active_at %v", first.LastActiveAt)
	}
	// Within a few seconds a second touch writes nothing.
	if err := models.TouchGeneratorActivity(e.ctx, e.db, g.ID); err != nil {
		t.Fatal(err)
	}
	second := must[*models.Generator](t)(models.GetGenerator(e.ctx, e.db, admin, g.ID, false))
	if !second.LastActiveAt.Equal(*first.LastActiveAt) || !second.UpdatedAt.Equal(first.UpdatedAt) {
		t.Fatal("a touch within 5 seconds wrote")
	}
	// An old timestamp is refreshed.
	if _, err := e.db.ExecContext(e.ctx, "UPDATE generators SET last_active_at = now() - interval '1 minute' WHERE id = ?", g.ID); err != nil {
		t.Fatal(err)
	}
	if err := models.TouchGeneratorActivity(e.ctx, e.db, g.ID); err != nil {
		t.Fatal(err)
	}
	third := must[*models.Generator](t)(models.GetGenerator(e.ctx, e.db, admin, g.ID, false))
	if time.Since(*third.LastActiveAt) > 30*time.Second {
		t.Fatal("stale last_active_at not refreshed")
	}
}

func TestConcurrentAdminRotations(t *testing.T) {
	e := setup(t)
	if _, _, err := models.EnsureAdminKey(e.ctx, e.db); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 6)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := models.RotateAdminKey(e.ctx, e.db)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	working := 0
	for _, k := range keys {
		if _, err := models.PrincipalForKeyHash(e.ctx, e.db, apikey.Hash(k)); err == nil {
			working++
		}
	}
	if working != 1 {
		t.Fatalf("%d of the rotated keys work, want exactly 1", working)
	}
}
