package migrations_test

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// Every table with updated_at has it maintained by the database: an UPDATE
// in a later transaction advances it, even when the client tries to set it.
func TestUpdatedAtMaintainedOnEveryTable(t *testing.T) {
	f := setup(t)
	gen := f.generator("g")
	stack := f.stack(gen, "s")
	obj, _ := f.object(stack, "a: 1")
	agent := f.agent("a", "c")
	event := f.event(agent, obj)
	sl := f.str(`INSERT INTO stack_labels (stack_id, label) VALUES ($1, 'l') RETURNING id::text`, stack)
	sa := f.str(`INSERT INTO stack_annotations (stack_id, key, value) VALUES ($1, 'k', 'v') RETURNING id::text`, stack)
	al := f.str(`INSERT INTO agent_labels (agent_id, label) VALUES ($1, 'l') RETURNING id::text`, agent)
	aa := f.str(`INSERT INTO agent_annotations (agent_id, key, value) VALUES ($1, 'k', 'v') RETURNING id::text`, agent)
	ak := f.str(`INSERT INTO admin_keys (pak_hash) VALUES ($1) RETURNING id::text`, emptySHA256)

	type tcase struct {
		table, id, set string
		force          string // sets updated_at to the past (deployment objects: with a restore)
	}
	cases := []tcase{
		{table: "generators", id: gen, set: "description = 'changed'"},
		{table: "stacks", id: stack, set: "description = 'changed'"},
		{table: "deployment_objects", id: obj, set: "deleted_at = now()", force: "updated_at = '2000-01-01', deleted_at = NULL"},
		{table: "agents", id: agent, set: "status = 'ACTIVE'"},
		{table: "agent_events", id: event, set: "message = 'changed'"},
		{table: "stack_labels", id: sl, set: "label = 'changed'"},
		{table: "stack_annotations", id: sa, set: "value = 'changed'"},
		{table: "agent_labels", id: al, set: "label = 'changed'"},
		{table: "agent_annotations", id: aa, set: "value = 'changed'"},
		{table: "admin_keys", id: ak, set: "deleted_at = now()"},
	}

	// The list covers every table that has the column.
	var tables []string
	rows, err := f.c.Query(f.ctx, `SELECT table_name::text FROM information_schema.columns
		WHERE table_schema = 'public' AND column_name = 'updated_at' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, s)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	for _, tb := range tables {
		if !slices.ContainsFunc(cases, func(c tcase) bool { return c.table == tb }) {
			t.Errorf("table %s has updated_at but no case here", tb)
		}
	}

	for _, c := range cases {
		t.Run(c.table, func(t *testing.T) {
			f := f.with(t)
			if c.force == "" {
				c.force = "updated_at = '2000-01-01'"
			}
			before := f.time(`SELECT updated_at FROM `+c.table+` WHERE id = $1`, c.id)
			time.Sleep(2 * time.Millisecond) // a later transaction has a later now()
			after := f.time(`UPDATE `+c.table+` SET `+c.set+` WHERE id = $1 RETURNING updated_at`, c.id)
			if !after.After(before) {
				t.Errorf("updated_at %v did not advance past %v", after, before)
			}
			txStart := f.time(`SELECT now()`)
			time.Sleep(2 * time.Millisecond)
			forced := f.time(`UPDATE `+c.table+` SET `+c.force+` WHERE id = $1 RETURNING updated_at`, c.id)
			if !forced.After(txStart) {
				t.Errorf("client-set updated_at kept: %v", forced)
			}
		})
	}
}

// marker is a deletion marker as read back from the database.
type marker struct {
	id, yaml, checksum string
	seq                int64
	submitted          time.Time
	deleted            *time.Time
}

// markers are the deletion markers of a stack, oldest first.
func (f *fx) markers(stack string) []marker {
	f.t.Helper()
	rows, err := f.c.Query(f.ctx, `SELECT id::text, yaml_content, yaml_checksum, sequence_id, submitted_at, deleted_at
		FROM deployment_objects WHERE stack_id = $1 AND is_deletion_marker ORDER BY sequence_id`, stack)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	var out []marker
	for rows.Next() {
		var m marker
		if err := rows.Scan(&m.id, &m.yaml, &m.checksum, &m.seq, &m.submitted, &m.deleted); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// checkMarker verifies the marker's fields against DESIGN §3.1.
func checkMarker(t *testing.T, m marker, deletedAt time.Time, afterSeq int64) {
	t.Helper()
	if m.yaml != "" || m.checksum != emptySHA256 {
		t.Errorf("marker content %q checksum %s, want empty and %s", m.yaml, m.checksum, emptySHA256)
	}
	if !m.submitted.Equal(deletedAt) {
		t.Errorf("marker submitted_at %v, want the stack's deleted_at %v", m.submitted, deletedAt)
	}
	if m.deleted != nil {
		t.Errorf("marker is deleted (%v), want live", *m.deleted)
	}
	if m.seq <= afterSeq {
		t.Errorf("marker sequence %d not above %d", m.seq, afterSeq)
	}
}

func TestStackSoftDeleteCascadesAndAddsOneMarker(t *testing.T) {
	f := setup(t)
	gen := f.generator("g")
	stack := f.stack(gen, "s")
	other := f.stack(gen, "other")
	o1, _ := f.object(stack, "a: 1")
	o2, _ := f.object(stack, "a: 2")
	o3, _ := f.object(stack, "a: 3")
	oo, _ := f.object(other, "b: 1")
	earlier := f.softDelete("deployment_objects", o1)
	maxSeq := f.int(`SELECT max(sequence_id) FROM deployment_objects`)
	otherRows := f.rows("deployment_objects", "stack_id = $1", other)

	time.Sleep(2 * time.Millisecond)
	at := f.softDelete("stacks", stack)

	for _, o := range []string{o2, o3} {
		if d := f.deletedAt("deployment_objects", o); d == nil || !d.Equal(at) {
			t.Errorf("object %s deleted_at %v, want %v", o, d, at)
		}
	}
	if d := f.deletedAt("deployment_objects", o1); d == nil || !d.Equal(earlier) {
		t.Errorf("object deleted earlier now has deleted_at %v, want %v", d, earlier)
	}
	ms := f.markers(stack)
	if len(ms) != 1 {
		t.Fatalf("%d markers, want 1", len(ms))
	}
	checkMarker(t, ms[0], at, maxSeq)
	if f.deletedAt("deployment_objects", oo) != nil || f.rows("deployment_objects", "stack_id = $1", other) != otherRows {
		t.Error("another stack's objects changed")
	}
	if n := len(f.markers(other)); n != 0 {
		t.Errorf("another stack got %d markers", n)
	}
	// An empty stack gets its marker too.
	empty := f.stack(gen, "empty")
	at = f.softDelete("stacks", empty)
	if ms := f.markers(empty); len(ms) != 1 {
		t.Errorf("empty stack: %d markers, want 1", len(ms))
	} else {
		checkMarker(t, ms[0], at, maxSeq)
	}
}

func TestGeneratorSoftDeleteCascades(t *testing.T) {
	f := setup(t)
	gen := f.generator("g")
	a, b, gone := f.stack(gen, "a"), f.stack(gen, "b"), f.stack(gen, "gone")
	a1, _ := f.object(a, "a: 1")
	a2, _ := f.object(a, "a: 2")
	b1, _ := f.object(b, "b: 1")
	f.object(gone, "gone: 1")
	goneAt := f.softDelete("stacks", gone)
	goneRows := f.rows("deployment_objects", "stack_id = $1", gone)

	otherGen := f.generator("other")
	x := f.stack(otherGen, "a")
	f.object(x, "x: 1")
	otherBefore := f.rows("stacks", "generator_id = $1", otherGen) + f.rows("deployment_objects", "stack_id = $1", x)

	maxSeq := f.int(`SELECT max(sequence_id) FROM deployment_objects`)
	time.Sleep(2 * time.Millisecond)
	at := f.softDelete("generators", gen)

	for _, s := range []string{a, b} {
		if d := f.deletedAt("stacks", s); d == nil || !d.Equal(at) {
			t.Errorf("stack %s deleted_at %v, want the generator's %v", s, d, at)
		}
		ms := f.markers(s)
		if len(ms) != 1 {
			t.Errorf("stack %s: %d markers, want 1", s, len(ms))
			continue
		}
		// The marker stays live inside a generator cascade.
		checkMarker(t, ms[0], at, maxSeq)
	}
	for _, o := range []string{a1, a2, b1} {
		if d := f.deletedAt("deployment_objects", o); d == nil || !d.Equal(at) {
			t.Errorf("object %s deleted_at %v, want %v", o, d, at)
		}
	}
	// The stack deleted before is untouched: same deleted_at, no second marker.
	if d := f.deletedAt("stacks", gone); d == nil || !d.Equal(goneAt) {
		t.Errorf("stack deleted before: deleted_at %v, want %v", d, goneAt)
	}
	if got := f.rows("deployment_objects", "stack_id = $1", gone); got != goneRows {
		t.Errorf("stack deleted before: objects changed\nbefore %s\nafter  %s", goneRows, got)
	}
	if got := f.rows("stacks", "generator_id = $1", otherGen) + f.rows("deployment_objects", "stack_id = $1", x); got != otherBefore {
		t.Error("another generator's stacks or objects changed")
	}
	// Markers got sequence numbers in a single statement, all distinct and new.
	if n := f.int(`SELECT count(DISTINCT sequence_id) FROM deployment_objects WHERE sequence_id > $1`, maxSeq); n != 2 {
		t.Errorf("%d new sequence ids, want 2", n)
	}
}

// latest is the live, non-marker object of the stack with the highest
// sequence: what an agent should run.
func (f *fx) latest(stack string) (id, yaml, checksum string, seq int64) {
	f.t.Helper()
	err := f.c.QueryRow(f.ctx, `SELECT id::text, yaml_content, yaml_checksum, sequence_id FROM deployment_objects
		WHERE stack_id = $1 AND deleted_at IS NULL ORDER BY sequence_id DESC LIMIT 1`, stack).Scan(&id, &yaml, &checksum, &seq)
	if err != nil {
		f.t.Fatalf("latest of %s: %v", stack, err)
	}
	return
}

func TestStackRestore(t *testing.T) {
	f := setup(t)
	gen := f.generator("g")
	stack := f.stack(gen, "s")
	o1, _ := f.object(stack, "a: 1")
	o2, _ := f.object(stack, "a: 2")
	o3, _ := f.object(stack, "a: 3")
	o4, _ := f.object(stack, "a: 4")
	earlier := f.softDelete("deployment_objects", o4) // individually deleted: stays deleted
	time.Sleep(2 * time.Millisecond)
	f.softDelete("stacks", stack)
	m := f.markers(stack)[0]
	maxSeq := f.int(`SELECT max(sequence_id) FROM deployment_objects`)
	checksum3 := f.str(`SELECT yaml_checksum FROM deployment_objects WHERE id = $1`, o3)

	f.restore("stacks", stack)

	for _, o := range []string{o1, o2, o3} {
		if d := f.deletedAt("deployment_objects", o); d != nil {
			t.Errorf("object %s still deleted (%v)", o, *d)
		}
	}
	if d := f.deletedAt("deployment_objects", o4); d == nil || !d.Equal(earlier) {
		t.Errorf("individually deleted object: deleted_at %v, want %v", d, earlier)
	}
	ms := f.markers(stack)
	if len(ms) != 1 || ms[0].id != m.id || ms[0].deleted == nil {
		t.Fatalf("markers after restore %+v: want the one marker, retired", ms)
	}
	firstRetired := *ms[0].deleted
	// The latest live content (o3's: o4 was deleted on its own) comes back
	// as a new object.
	id, yaml, sum, seq := f.latest(stack)
	if id == o3 || yaml != "a: 3" || sum != checksum3 || seq <= maxSeq {
		t.Errorf("republished %s %q %s seq %d; want a new object with o3's content %s and a sequence above %d",
			id, yaml, sum, seq, checksum3, maxSeq)
	}
	if n := f.int(`SELECT count(*) FROM deployment_objects WHERE stack_id = $1 AND sequence_id > $2`, stack, maxSeq); n != 1 {
		t.Errorf("%d objects added by the restore, want 1", n)
	}
	if f.bool(`SELECT is_deletion_marker FROM deployment_objects WHERE id = $1`, id) {
		t.Error("republished object is a marker")
	}

	// A second cycle: the new marker is retired, the old one stays retired,
	// and the content is published once more.
	time.Sleep(2 * time.Millisecond)
	f.softDelete("stacks", stack)
	f.restore("stacks", stack)
	ms = f.markers(stack)
	if len(ms) != 2 || ms[0].deleted == nil || ms[1].deleted == nil {
		t.Fatalf("markers after two cycles: %+v, want two, both retired", ms)
	}
	if !ms[0].deleted.Equal(firstRetired) {
		t.Errorf("the first marker was touched again by the second restore")
	}
	_, yaml, _, seq2 := f.latest(stack)
	if yaml != "a: 3" || seq2 <= seq {
		t.Errorf("second republish: %q seq %d (first %d)", yaml, seq2, seq)
	}
	if n := f.int(`SELECT count(*) FROM deployment_objects WHERE stack_id = $1 AND NOT is_deletion_marker AND deleted_at IS NULL`, stack); n != 5 {
		t.Errorf("%d live objects after two cycles, want 5 (o1-o3 and two republished)", n)
	}
}

func TestRestoringAStackWithoutContentRetiresItsMarkerOnly(t *testing.T) {
	f := setup(t)
	stack := f.stack(f.generator("g"), "s")
	f.softDelete("stacks", stack)
	f.restore("stacks", stack)
	ms := f.markers(stack)
	if len(ms) != 1 || ms[0].deleted == nil {
		t.Fatalf("markers %+v, want one, retired", ms)
	}
	if n := f.int(`SELECT count(*) FROM deployment_objects WHERE stack_id = $1`, stack); n != 1 {
		t.Errorf("%d objects, want only the marker", n)
	}
}

func TestGeneratorRestoreRestoresItsStacks(t *testing.T) {
	f := setup(t)
	gen := f.generator("g")
	a, b, gone := f.stack(gen, "a"), f.stack(gen, "b"), f.stack(gen, "gone")
	f.object(a, "a: 1")
	f.object(b, "b: 1")
	f.object(gone, "gone: 1")
	goneAt := f.softDelete("stacks", gone)
	time.Sleep(2 * time.Millisecond)
	f.softDelete("generators", gen)
	maxSeq := f.int(`SELECT max(sequence_id) FROM deployment_objects`)

	f.restore("generators", gen)

	for s, content := range map[string]string{a: "a: 1", b: "b: 1"} {
		if d := f.deletedAt("stacks", s); d != nil {
			t.Errorf("stack %s still deleted", s)
		}
		if ms := f.markers(s); len(ms) != 1 || ms[0].deleted == nil {
			t.Errorf("stack %s markers %+v, want one, retired", s, ms)
		}
		if _, yaml, _, seq := f.latest(s); yaml != content || seq <= maxSeq {
			t.Errorf("stack %s: latest %q seq %d, want %q republished above %d", s, yaml, seq, content, maxSeq)
		}
	}
	if d := f.deletedAt("stacks", gone); d == nil || !d.Equal(goneAt) {
		t.Errorf("stack deleted on its own: deleted_at %v, want %v", d, goneAt)
	}
	if ms := f.markers(gone); len(ms) != 1 || ms[0].deleted != nil {
		t.Errorf("stack deleted on its own: markers %+v, want its one live marker", ms)
	}
	if n := f.int(`SELECT count(*) FROM deployment_objects WHERE sequence_id > $1`, maxSeq); n != 2 {
		t.Errorf("%d objects published by the generator restore, want 2", n)
	}
}

func TestAgentSoftDeleteAndRestoreCascadeToEvents(t *testing.T) {
	f := setup(t)
	stack := f.stack(f.generator("g"), "s")
	obj, _ := f.object(stack, "a: 1")
	agent, other := f.agent("a", "c"), f.agent("b", "c")
	e1, e2, e3 := f.event(agent, obj), f.event(agent, obj), f.event(agent, obj)
	oe := f.event(other, obj)
	earlier := f.softDelete("agent_events", e1)
	time.Sleep(2 * time.Millisecond)

	at := f.softDelete("agents", agent)
	for _, e := range []string{e2, e3} {
		if d := f.deletedAt("agent_events", e); d == nil || !d.Equal(at) {
			t.Errorf("event %s deleted_at %v, want %v", e, d, at)
		}
	}
	if d := f.deletedAt("agent_events", e1); d == nil || !d.Equal(earlier) {
		t.Errorf("event deleted before: %v, want %v", d, earlier)
	}
	if f.deletedAt("agent_events", oe) != nil {
		t.Error("another agent's event was deleted")
	}

	f.restore("agents", agent)
	for _, e := range []string{e2, e3} {
		if d := f.deletedAt("agent_events", e); d != nil {
			t.Errorf("event %s still deleted after restore", e)
		}
	}
	if d := f.deletedAt("agent_events", e1); d == nil || !d.Equal(earlier) {
		t.Errorf("event deleted before came back or changed: %v", d)
	}
}

// world is a small data set with two generators, three stacks and two agents
// tied together by targets and events.
type world struct {
	g1, g2, s11, s12, s21, a1, a2 string
}

func (f *fx) world() world {
	f.t.Helper()
	var w world
	w.g1, w.g2 = f.generator("g1"), f.generator("g2")
	w.s11, w.s12, w.s21 = f.stack(w.g1, "s11"), f.stack(w.g1, "s12"), f.stack(w.g2, "s21")
	w.a1, w.a2 = f.agent("a1", "c"), f.agent("a2", "c")
	objs := map[string][]string{}
	for i, s := range []string{w.s11, w.s12, w.s21} {
		for j := range 2 {
			id, _ := f.object(s, fmt.Sprintf("s%d: %d", i, j))
			objs[s] = append(objs[s], id)
		}
		f.exec(`INSERT INTO stack_labels (stack_id, label) VALUES ($1, 'l1'), ($1, 'l2')`, s)
		f.exec(`INSERT INTO stack_annotations (stack_id, key, value) VALUES ($1, 'k', 'v')`, s)
	}
	for _, a := range []string{w.a1, w.a2} {
		f.exec(`INSERT INTO agent_labels (agent_id, label) VALUES ($1, 'l')`, a)
		f.exec(`INSERT INTO agent_annotations (agent_id, key, value) VALUES ($1, 'k', 'v')`, a)
	}
	for _, p := range [][2]string{{w.a1, w.s11}, {w.a1, w.s21}, {w.a2, w.s11}, {w.a2, w.s12}} {
		f.target(p[0], p[1])
		f.event(p[0], objs[p[1]][0])
		f.event(p[0], objs[p[1]][1])
	}
	// Something soft-deleted below, to be removed all the same.
	f.softDelete("deployment_objects", objs[w.s11][0])
	return w
}

// One DELETE removes the row and everything DESIGN §3.1 lists under it; all
// other rows stay exactly as they were.
func TestHardDeletes(t *testing.T) {
	t.Parallel()
	stackOwned := func(stacks string) map[string]string {
		return map[string]string{
			"stacks":             "id IN (" + stacks + ")",
			"deployment_objects": "stack_id IN (" + stacks + ")",
			"agent_events":       "deployment_object_id IN (SELECT id FROM deployment_objects WHERE stack_id IN (" + stacks + "))",
			"agent_targets":      "stack_id IN (" + stacks + ")",
			"stack_labels":       "stack_id IN (" + stacks + ")",
			"stack_annotations":  "stack_id IN (" + stacks + ")",
		}
	}
	cases := []struct {
		name      string
		table     string
		pick      func(world) string
		softFirst bool
		owned     map[string]string // table -> rows going with it ($1 is the id)
	}{
		{name: "stack", table: "stacks", pick: func(w world) string { return w.s11 }, owned: stackOwned("$1")},
		{name: "soft-deleted stack", table: "stacks", pick: func(w world) string { return w.s11 }, softFirst: true, owned: stackOwned("$1")},
		{name: "agent", table: "agents", pick: func(w world) string { return w.a1 }, owned: map[string]string{
			"agents":            "id = $1",
			"agent_events":      "agent_id = $1",
			"agent_targets":     "agent_id = $1",
			"agent_labels":      "agent_id = $1",
			"agent_annotations": "agent_id = $1",
		}},
		{name: "soft-deleted agent", table: "agents", pick: func(w world) string { return w.a1 }, softFirst: true, owned: map[string]string{
			"agents":            "id = $1",
			"agent_events":      "agent_id = $1",
			"agent_targets":     "agent_id = $1",
			"agent_labels":      "agent_id = $1",
			"agent_annotations": "agent_id = $1",
		}},
		{name: "generator", table: "generators", pick: func(w world) string { return w.g1 },
			owned: withRow(stackOwned("SELECT id FROM stacks WHERE generator_id = $1"), "generators", "id = $1")},
		{name: "soft-deleted generator", table: "generators", pick: func(w world) string { return w.g1 }, softFirst: true,
			owned: withRow(stackOwned("SELECT id FROM stacks WHERE generator_id = $1"), "generators", "id = $1")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t)
			w := f.world()
			id := c.pick(w)
			if c.softFirst {
				f.softDelete(c.table, id)
			}
			survivors := map[string]string{}
			for _, tb := range dataTables {
				p, ok := c.owned[tb]
				if !ok {
					survivors[tb] = f.rows(tb, "true")
					continue
				}
				if n := f.int(`SELECT count(*) FROM `+tb+` WHERE `+p, id); n == 0 {
					t.Fatalf("%s: no rows owned by the %s to begin with", tb, c.name)
				}
				survivors[tb] = f.rows(tb, "NOT ("+p+")", id)
			}
			tag, err := f.c.Exec(f.ctx, `DELETE FROM `+c.table+` WHERE id = $1`, id)
			if err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("delete: %v (%d rows)", err, tag.RowsAffected())
			}
			f.sameSnapshot(survivors, "hard delete of the "+c.name)
		})
	}
}

func withRow(m map[string]string, table, where string) map[string]string {
	m[table] = where
	return m
}

// Changing the deleted_at of a deleted parent carries its cascade along, so
// a later restore still brings back what the delete took.
func TestRestampedDeleteStillRestores(t *testing.T) {
	f := setup(t)
	gen := f.generator("g")
	a, own := f.stack(gen, "a"), f.stack(gen, "own")
	obj, _ := f.object(a, "a: 1")
	ownAt := f.softDelete("stacks", own)
	agent := f.agent("a", "c")
	ev := f.event(agent, obj)
	time.Sleep(2 * time.Millisecond)
	f.softDelete("generators", gen)
	f.softDelete("agents", agent)
	marker := f.markers(a)[0]

	f.exec(`UPDATE generators SET deleted_at = '2001-02-03 04:05:06+00' WHERE id = $1`, gen)
	f.exec(`UPDATE agents SET deleted_at = '2001-02-03 04:05:06+00' WHERE id = $1`, agent)
	if d := f.deletedAt("deployment_objects", obj); d == nil || d.Year() != 2001 {
		t.Errorf("object of the re-stamped generator: deleted_at %v", d)
	}
	if d := f.deletedAt("stacks", own); d == nil || !d.Equal(ownAt) {
		t.Errorf("stack deleted on its own was re-stamped: %v", d)
	}
	if m := f.markers(a); len(m) != 1 || m[0].deleted != nil || !m[0].submitted.Equal(marker.submitted) {
		t.Errorf("marker changed by the re-stamp: %+v, was %+v", m, marker)
	}

	f.restore("generators", gen)
	f.restore("agents", agent)
	if f.deletedAt("stacks", a) != nil || f.deletedAt("deployment_objects", obj) != nil || f.deletedAt("agent_events", ev) != nil {
		t.Error("restore after a re-stamp left children deleted")
	}
	if d := f.deletedAt("stacks", own); d == nil || !d.Equal(ownAt) {
		t.Errorf("stack deleted on its own came back or changed: %v", d)
	}
}
