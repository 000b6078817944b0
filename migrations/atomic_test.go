package migrations_test

import (
	"testing"
)

// failInserts installs, in this test's database only, a trigger that makes
// inserting a deployment object into stack fail (markers only, or content
// only), so that a cascade fails half-way through.
func (f *fx) failInserts(stack string, markers bool) {
	f.t.Helper()
	cond := "NOT NEW.is_deletion_marker"
	if markers {
		cond = "NEW.is_deletion_marker"
	}
	f.exec(`CREATE FUNCTION test_fail_insert() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.stack_id = '` + stack + `' AND ` + cond + ` THEN
				RAISE EXCEPTION 'injected failure' USING ERRCODE = 'XX999';
			END IF;
			RETURN NEW;
		END $$`)
	f.exec(`CREATE TRIGGER zz_test_fail_insert BEFORE INSERT ON deployment_objects
		FOR EACH ROW EXECUTE FUNCTION test_fail_insert()`)
}

func (f *fx) clearFailures() {
	f.t.Helper()
	f.exec(`DROP TRIGGER zz_test_fail_insert ON deployment_objects`)
	f.exec(`DROP FUNCTION test_fail_insert()`)
}

// A cascade that fails part-way leaves the database exactly as it was: the
// stacks done before the failing one are rolled back with it.
func TestFailedCascadeLeavesTheDatabaseAsItWas(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		prep    func(f *fx, gen, last string)
		markers bool   // fail marker inserts (else content inserts)
		stmt    string // $1 is the generator, $2 the last stack
	}{
		{"generator delete, one marker fails", nil, true,
			`UPDATE generators SET deleted_at = now() WHERE id = $1 AND $2::uuid IS NOT NULL`},
		{"stack delete, its marker fails", nil, true,
			`UPDATE stacks SET deleted_at = now() WHERE id = $2 AND $1::uuid IS NOT NULL`},
		{"generator restore, one republish fails", func(f *fx, gen, _ string) { f.softDelete("generators", gen) }, false,
			`UPDATE generators SET deleted_at = NULL WHERE id = $1 AND $2::uuid IS NOT NULL`},
		{"stack restore, its republish fails", func(f *fx, _, last string) { f.softDelete("stacks", last) }, false,
			`UPDATE stacks SET deleted_at = NULL WHERE id = $2 AND $1::uuid IS NOT NULL`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t)
			gen := f.generator("g")
			stacks := []string{f.stack(gen, "a"), f.stack(gen, "b"), f.stack(gen, "c")}
			for _, s := range stacks {
				f.object(s, "a: 1")
				f.object(s, "a: 2")
			}
			agent := f.agent("a", "c")
			f.target(agent, stacks[0])
			// Fail on the stack with the greatest id: whatever order the
			// cascade takes, the others are likely done by then, and the
			// statement fails in any case.
			last := f.str(`SELECT max(id::text) FROM stacks`)
			if c.prep != nil {
				c.prep(f, gen, last)
			}
			f.failInserts(last, c.markers)

			before := f.snapshot()
			err := f.execErr(c.stmt, gen, last)
			wantPgErr(t, err, "XX999", "")
			f.sameSnapshot(before, c.name)

			// Without the failure the same statement goes through.
			f.clearFailures()
			f.exec(c.stmt, gen, last)
		})
	}
}

// Restoring a generator whose cascade would bring back two stacks of the same
// name (both deleted at the very instant the generator was) fails on the
// unique index and changes nothing.
func TestRestoreClashInsideTheCascadeRollsBackEverything(t *testing.T) {
	f := setup(t)
	gen := f.generator("g")
	s1 := f.stack(gen, "web")
	f.object(s1, "a: 1")
	const at = "2026-01-02 03:04:05+00"
	f.exec(`UPDATE stacks SET deleted_at = $1 WHERE id = $2`, at, s1)
	s2 := f.stack(gen, "web")
	f.object(s2, "a: 2")
	f.exec(`UPDATE generators SET deleted_at = $1 WHERE id = $2`, at, gen)
	if d := f.deletedAt("stacks", s2); d == nil {
		t.Fatal("generator delete did not cascade")
	}

	before := f.snapshot()
	err := f.execErr(`UPDATE generators SET deleted_at = NULL WHERE id = $1`, gen)
	wantPgErr(t, err, "23505", "stacks_generator_id_name_live_key")
	f.sameSnapshot(before, "a restore that clashed in its cascade")

	// Renaming one of them resolves the clash; then both come back.
	f.exec(`UPDATE stacks SET name = 'web-old' WHERE id = $1`, s1)
	f.restore("generators", gen)
	for _, s := range []string{s1, s2} {
		if f.deletedAt("stacks", s) != nil {
			t.Errorf("stack %s not restored", s)
		}
	}
}

// A generator restore that clashes on its own name changes nothing either.
func TestGeneratorRestoreClashChangesNothing(t *testing.T) {
	f := setup(t)
	gen := f.generator("g")
	s := f.stack(gen, "s")
	f.object(s, "a: 1")
	f.softDelete("generators", gen)
	f.generator("g")

	before := f.snapshot()
	err := f.execErr(`UPDATE generators SET deleted_at = NULL WHERE id = $1`, gen)
	wantPgErr(t, err, "23505", "generators_name_live_key")
	f.sameSnapshot(before, "a generator restore into a name clash")
}
