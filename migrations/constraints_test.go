package migrations_test

import (
	"strings"
	"testing"
)

func TestDeploymentObjectsAreImmutable(t *testing.T) {
	f := setup(t)
	gen := f.generator("g")
	stack, other := f.stack(gen, "s"), f.stack(gen, "other")
	obj, _ := f.object(stack, "a: 1")
	before := f.rows("deployment_objects", "id = $1", obj)

	for _, set := range []string{
		"yaml_content = 'a: 2'",
		"yaml_content = 'a: 2', yaml_checksum = encode(sha256('a: 2'::bytea), 'hex')",
		"yaml_checksum = '" + emptySHA256 + "'",
		"stack_id = '" + other + "'",
		"sequence_id = sequence_id + 1000",
		"submitted_at = submitted_at - interval '1 day'",
		"created_at = created_at - interval '1 day'",
		"is_deletion_marker = true",
		"id = gen_random_uuid()",
		"deleted_at = now(), yaml_content = 'a: 2'",
		"updated_at = updated_at + interval '1 day'",
	} {
		t.Run(set, func(t *testing.T) {
			f := f.with(t)
			err := f.execErr(`UPDATE deployment_objects SET `+set+` WHERE id = $1`, obj)
			wantPgErr(t, err, "BR001", "")
			if got := f.rows("deployment_objects", "id = $1", obj); got != before {
				t.Errorf("object changed:\nbefore %s\nafter  %s", before, got)
			}
		})
	}

	// Soft delete and restore succeed and leave the content alone.
	content := f.str(`SELECT yaml_content || yaml_checksum || sequence_id FROM deployment_objects WHERE id = $1`, obj)
	f.softDelete("deployment_objects", obj)
	if f.deletedAt("deployment_objects", obj) == nil {
		t.Fatal("soft delete did not stick")
	}
	f.restore("deployment_objects", obj)
	f.exec(`UPDATE deployment_objects SET deleted_at = now(), updated_at = now() WHERE id = $1`, obj)
	f.restore("deployment_objects", obj)
	if got := f.str(`SELECT yaml_content || yaml_checksum || sequence_id FROM deployment_objects WHERE id = $1`, obj); got != content {
		t.Errorf("content changed by soft delete and restore: %q, want %q", got, content)
	}

	// A marker may change while it stays a marker, never become content.
	f.softDelete("stacks", stack)
	m := f.markers(stack)[0]
	f.exec(`UPDATE deployment_objects SET submitted_at = submitted_at + interval '1 second' WHERE id = $1`, m.id)
	f.exec(`UPDATE deployment_objects SET deleted_at = now() WHERE id = $1`, m.id)
	markerBefore := f.rows("deployment_objects", "id = $1", m.id)
	for _, set := range []string{
		"is_deletion_marker = false",
		"is_deletion_marker = false, yaml_content = 'a: 1', yaml_checksum = encode(sha256('a: 1'::bytea), 'hex')",
	} {
		err := f.execErr(`UPDATE deployment_objects SET `+set+` WHERE id = $1`, m.id)
		wantPgErr(t, err, "BR001", "")
	}
	// Content on a marker is refused by its CHECK.
	err := f.execErr(`UPDATE deployment_objects SET yaml_content = 'x', yaml_checksum = encode(sha256('x'::bytea), 'hex') WHERE id = $1`, m.id)
	wantPgErr(t, err, "23514", "deployment_objects_marker_content_check")
	if got := f.rows("deployment_objects", "id = $1", m.id); got != markerBefore {
		t.Errorf("marker changed by refused updates:\nbefore %s\nafter  %s", markerBefore, got)
	}
}

func TestUniqueAmongLiveRows(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, table, constraint string
		insert                  string // returns id; $1 is a live generator
		elsewhere               string // the same name where it does not clash, if any
	}{
		{"generator name", "generators", "generators_name_live_key",
			`INSERT INTO generators (name) SELECT 'dup' WHERE $1::uuid IS NOT NULL RETURNING id::text`,
			""},
		{"stack name per generator", "stacks", "stacks_generator_id_name_live_key",
			`INSERT INTO stacks (generator_id, name) VALUES ($1, 'dup') RETURNING id::text`,
			`INSERT INTO stacks (generator_id, name) SELECT id, 'dup' FROM generators WHERE name = 'other' AND $1::uuid IS NOT NULL RETURNING id::text`},
		{"agent name per cluster", "agents", "agents_name_cluster_name_live_key",
			`INSERT INTO agents (name, cluster_name) SELECT 'dup', 'c1' WHERE $1::uuid IS NOT NULL RETURNING id::text`,
			`INSERT INTO agents (name, cluster_name) SELECT 'dup', 'c2' WHERE $1::uuid IS NOT NULL RETURNING id::text`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t)
			gen := f.generator("g")
			f.generator("other")
			first := f.str(c.insert, gen)
			if c.elsewhere != "" {
				f.str(c.elsewhere, gen)
			}

			before := f.snapshot()
			err := f.execErr(c.insert, gen)
			wantPgErr(t, err, "23505", c.constraint)
			f.sameSnapshot(before, "a refused duplicate")

			// After a soft delete the name is free again ...
			f.softDelete(c.table, first)
			second := f.str(c.insert, gen)

			// ... and restoring the first into the clash fails, changing nothing.
			before = f.snapshot()
			err = f.execErr(`UPDATE `+c.table+` SET deleted_at = NULL WHERE id = $1`, first)
			wantPgErr(t, err, "23505", c.constraint)
			f.sameSnapshot(before, "a refused restore")

			// Once the clash is gone, the restore works.
			f.softDelete(c.table, second)
			f.restore(c.table, first)
		})
	}
}

func TestOtherUniqueKeys(t *testing.T) {
	f := setup(t)
	stack := f.stack(f.generator("g"), "s")
	agent := f.agent("a", "c")
	f.target(agent, stack)
	f.exec(`INSERT INTO stack_labels (stack_id, label) VALUES ($1, 'l')`, stack)
	f.exec(`INSERT INTO stack_annotations (stack_id, key, value) VALUES ($1, 'k', 'v')`, stack)
	f.exec(`INSERT INTO agent_labels (agent_id, label) VALUES ($1, 'l')`, agent)
	f.exec(`INSERT INTO agent_annotations (agent_id, key, value) VALUES ($1, 'k', 'v')`, agent)
	hash := strings.Repeat("a", 64)
	f.exec(`UPDATE generators SET pak_hash = $1`, hash)
	f.exec(`INSERT INTO admin_keys (pak_hash) VALUES ($1)`, hash)

	for _, c := range []struct{ sql, constraint string }{
		{`INSERT INTO agent_targets (agent_id, stack_id) VALUES ($1, $2)`, "agent_targets_agent_id_stack_id_key"},
		{`INSERT INTO stack_labels (stack_id, label) SELECT $2, 'l' WHERE $1::uuid IS NOT NULL`, "stack_labels_stack_id_label_key"},
		{`INSERT INTO stack_annotations (stack_id, key, value) SELECT $2, 'k', 'other' WHERE $1::uuid IS NOT NULL`, "stack_annotations_stack_id_key_key"},
		{`INSERT INTO agent_labels (agent_id, label) SELECT $1, 'l' WHERE $2::uuid IS NOT NULL`, "agent_labels_agent_id_label_key"},
		{`INSERT INTO agent_annotations (agent_id, key, value) SELECT $1, 'k', 'other' WHERE $2::uuid IS NOT NULL`, "agent_annotations_agent_id_key_key"},
		{`INSERT INTO generators (name, pak_hash) SELECT 'g2', '` + hash + `' WHERE $1::uuid <> $2::uuid`, "generators_pak_hash_key"},
		{`UPDATE agents SET pak_hash = '` + hash + `' WHERE id = $1 AND $2::uuid IS NOT NULL`, ""},
		{`INSERT INTO agents (name, cluster_name, pak_hash) SELECT 'a', 'c2', '` + hash + `' WHERE $1::uuid <> $2::uuid`, "agents_pak_hash_key"},
		{`INSERT INTO admin_keys (pak_hash) SELECT '` + strings.Repeat("b", 64) + `' WHERE $1::uuid <> $2::uuid`, "admin_keys_one_live_key"},
	} {
		err := f.execErr(c.sql, agent, stack)
		if c.constraint == "" { // agents and generators may share a hash value
			if err != nil {
				t.Errorf("%s: %v", c.sql, err)
			}
			continue
		}
		wantPgErr(t, err, "23505", c.constraint)
	}
	// Rotating the admin key: retire the old one, then a new one is accepted.
	f.exec(`UPDATE admin_keys SET deleted_at = now()`)
	f.exec(`INSERT INTO admin_keys (pak_hash) VALUES ($1)`, strings.Repeat("b", 64))
}

func TestValidation(t *testing.T) {
	f := setup(t)
	gen := f.generator("g")
	stack := f.stack(gen, "s")
	agent := f.agent("a", "c")
	obj, _ := f.object(stack, "a: 1")

	long := func(n int) string { return strings.Repeat("x", n) }
	badNames := []string{"", " ", "   ", "\t", "\n", " \t\r\n ", "\v\f", "\u00a0", "\u3000\u2003", long(256)}
	goodNames := []string{"x", "a name with spaces", long(255), strings.Repeat("é", 255)}
	badTokens := []string{"", long(65), "a b", "a\tb", "a\nb", " a", "a ", "\r", "a\vb", "a\u00a0b", "a\u2028b", "a\u3000b"}
	goodTokens := []string{"x", long(64), "app.kubernetes.io/name", strings.Repeat("é", 64)}

	type column struct {
		constraint string
		sql        string // $1 is the value
		args       []any
	}
	names := []column{
		{"generators_name_check", `INSERT INTO generators (name) VALUES ($1)`, nil},
		{"stacks_name_check", `INSERT INTO stacks (generator_id, name) VALUES ($2, $1)`, []any{gen}},
		{"agents_name_check", `INSERT INTO agents (name, cluster_name) VALUES ($1, gen_random_uuid()::text)`, nil},
		{"agents_cluster_name_check", `INSERT INTO agents (name, cluster_name) VALUES (gen_random_uuid()::text, $1)`, nil},
	}
	tokens := []column{
		{"stack_labels_label_check", `INSERT INTO stack_labels (stack_id, label) VALUES ($2, $1)`, []any{stack}},
		{"stack_annotations_key_check", `INSERT INTO stack_annotations (stack_id, key, value) VALUES ($2, $1, 'v')`, []any{stack}},
		{"stack_annotations_value_check", `INSERT INTO stack_annotations (stack_id, key, value) VALUES ($2, gen_random_uuid()::text, $1)`, []any{stack}},
		{"agent_labels_label_check", `INSERT INTO agent_labels (agent_id, label) VALUES ($2, $1)`, []any{agent}},
		{"agent_annotations_key_check", `INSERT INTO agent_annotations (agent_id, key, value) VALUES ($2, $1, 'v')`, []any{agent}},
		{"agent_annotations_value_check", `INSERT INTO agent_annotations (agent_id, key, value) VALUES ($2, gen_random_uuid()::text, $1)`, []any{agent}},
	}
	run := func(cols []column, bad, good []string) {
		for _, col := range cols {
			for _, v := range bad {
				err := f.execErr(col.sql, append([]any{v}, col.args...)...)
				wantPgErr(t, err, "23514", col.constraint)
			}
			for _, v := range good {
				if err := f.execErr(col.sql, append([]any{v}, col.args...)...); err != nil {
					t.Errorf("%s refused %q: %v", col.constraint, v, err)
				}
			}
		}
	}
	run(names, badNames, goodNames)
	run(tokens, badTokens, goodTokens)

	// Updates are checked as well as inserts.
	wantPgErr(t, f.execErr(`UPDATE stacks SET name = ' ' WHERE id = $1`, stack), "23514", "stacks_name_check")
	wantPgErr(t, f.execErr(`UPDATE stack_labels SET label = 'a b'`), "23514", "stack_labels_label_check")

	// A missing name is NOT NULL's business.
	wantPgErr(t, f.execErr(`INSERT INTO generators (name) VALUES (NULL)`), "23502", "")

	// Agent status.
	for _, s := range []string{"active", "DELETED", "", "ACTIVE "} {
		wantPgErr(t, f.execErr(`UPDATE agents SET status = $1 WHERE id = $2`, s, agent), "23514", "agents_status_check")
	}
	f.exec(`UPDATE agents SET status = 'ACTIVE' WHERE id = $1`, agent)
	if got := f.str(`SELECT status FROM agents WHERE id = $1`, f.agent("new", "c")); got != "INACTIVE" {
		t.Errorf("new agent status %q, want INACTIVE", got)
	}

	// Checksums: the lowercase hex SHA-256 of the content, nothing else.
	for _, sum := range []string{"", emptySHA256, strings.ToUpper(f.str(`SELECT encode(sha256('a: 2'::bytea), 'hex')`)), "not hex"} {
		err := f.execErr(`INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum) VALUES ($1, 'a: 2', $2)`, stack, sum)
		wantPgErr(t, err, "23514", "deployment_objects_yaml_checksum_check")
	}
	// Non-ASCII content hashes as UTF-8.
	f.object(stack, "name: Grüße")
	// A marker carries no content.
	err := f.execErr(`INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum, is_deletion_marker)
		VALUES ($1, 'a: 1', encode(sha256('a: 1'::bytea), 'hex'), true)`, stack)
	wantPgErr(t, err, "23514", "deployment_objects_marker_content_check")

	// Event type and status: present and short.
	for _, c := range []struct{ typ, status, code, constraint string }{
		{"", "OK", "23514", "agent_events_event_type_check"},
		{" \t", "OK", "23514", "agent_events_event_type_check"},
		{"DEPLOY", "", "23514", "agent_events_status_check"},
		{"DEPLOY", "\n", "23514", "agent_events_status_check"},
		{"\u00a0", "OK", "23514", "agent_events_event_type_check"},
		{long(51), "OK", "22001", ""},
		{"DEPLOY", long(11), "22001", ""},
	} {
		err := f.execErr(`INSERT INTO agent_events (agent_id, deployment_object_id, event_type, status) VALUES ($1, $2, $3, $4)`,
			agent, obj, c.typ, c.status)
		wantPgErr(t, err, c.code, c.constraint)
	}

	// Key hashes are lowercase hex SHA-256.
	for _, c := range []struct{ sql, constraint string }{
		{`UPDATE generators SET pak_hash = $1`, "generators_pak_hash_check"},
		{`UPDATE agents SET pak_hash = $1`, "agents_pak_hash_check"},
		{`INSERT INTO admin_keys (pak_hash) VALUES ($1)`, "admin_keys_pak_hash_check"},
	} {
		for _, h := range []string{strings.ToUpper(emptySHA256), emptySHA256[:63], emptySHA256 + "0", ""} {
			wantPgErr(t, f.execErr(c.sql, h), "23514", c.constraint)
		}
	}
	// Rate limits are positive.
	wantPgErr(t, f.execErr(`UPDATE generators SET rate_limit_per_minute = 0`), "23514", "generators_rate_limit_per_minute_check")
}

// BR002: nothing is added under, moved into or restored into a soft-deleted
// parent.
func TestNoChildrenUnderDeletedParents(t *testing.T) {
	f := setup(t)
	deadGen := f.generator("dead")
	deadStack := f.stack(deadGen, "s")
	liveGen := f.generator("live")
	liveStack := f.stack(liveGen, "s")
	obj, _ := f.object(liveStack, "a: 1")
	deadAgent, liveAgent := f.agent("dead", "c"), f.agent("live", "c")
	f.softDelete("generators", deadGen)
	f.softDelete("agents", deadAgent)
	ownDeleted := f.stack(liveGen, "own")
	earlierObj, _ := f.object(ownDeleted, "a: 1")
	cascadedObj, _ := f.object(ownDeleted, "a: 2")
	f.softDelete("deployment_objects", earlierObj)
	f.softDelete("stacks", ownDeleted)

	before := f.snapshot()
	for _, c := range []struct{ name, sql string }{
		{"stack under a deleted generator", `INSERT INTO stacks (generator_id, name) VALUES ('` + deadGen + `', 'new')`},
		{"stack moved to a deleted generator", `UPDATE stacks SET generator_id = '` + deadGen + `' WHERE id = '` + liveStack + `'`},
		{"stack restored under a deleted generator", `UPDATE stacks SET deleted_at = NULL WHERE id = '` + deadStack + `'`},
		{"object into a deleted stack", `INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
			VALUES ('` + ownDeleted + `', '', '` + emptySHA256 + `')`},
		{"object into a stack deleted by its generator", `INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
			VALUES ('` + deadStack + `', '', '` + emptySHA256 + `')`},
		{"object deleted before its stack restored into it", `UPDATE deployment_objects SET deleted_at = NULL WHERE id = '` + earlierObj + `'`},
		{"object deleted with its stack restored alone", `UPDATE deployment_objects SET deleted_at = NULL WHERE id = '` + cascadedObj + `'`},
		{"target to a deleted agent", `INSERT INTO agent_targets (agent_id, stack_id) VALUES ('` + deadAgent + `', '` + liveStack + `')`},
		{"target to a deleted stack", `INSERT INTO agent_targets (agent_id, stack_id) VALUES ('` + liveAgent + `', '` + ownDeleted + `')`},
		{"event of a deleted agent", `INSERT INTO agent_events (agent_id, deployment_object_id, event_type, status)
			VALUES ('` + deadAgent + `', '` + obj + `', 'DEPLOY', 'OK')`},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := f.with(t)
			wantPgErr(t, f.execErr(c.sql), "BR002", "")
		})
	}
	f.sameSnapshot(before, "refused writes under deleted parents")

	// The same rows are fine under live parents.
	f.stack(liveGen, "new")
	f.object(liveStack, "a: 2")
	f.target(liveAgent, liveStack)
	f.event(liveAgent, obj)
}

func TestSequenceIDAssignedByTheDatabase(t *testing.T) {
	f := setup(t)
	stack := f.stack(f.generator("g"), "s")
	_, s1 := f.object(stack, "a: 1")
	_, s2 := f.object(stack, "a: 2")
	if s2 <= s1 {
		t.Fatalf("sequence %d after %d", s2, s1)
	}
	// A client-supplied value is overridden.
	for _, forced := range []int64{1, s2, 1 << 40} {
		got := f.int(`INSERT INTO deployment_objects (sequence_id, stack_id, yaml_content, yaml_checksum)
			VALUES ($1, $2, 'a: 3', encode(sha256('a: 3'::bytea), 'hex')) RETURNING sequence_id`, forced, stack)
		if got == forced || got <= s2 {
			t.Errorf("client sequence %d: stored %d, want a fresh one above %d", forced, got, s2)
		}
		s2 = got
	}
	// One multi-row statement: distinct, all above what came before.
	f.exec(`INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
		SELECT $1, 'n: ' || i, encode(sha256(convert_to('n: ' || i, 'UTF8')), 'hex') FROM generate_series(1, 50) i`, stack)
	if n := f.int(`SELECT count(DISTINCT sequence_id) FROM deployment_objects WHERE sequence_id > $1`, s2); n != 50 {
		t.Errorf("%d distinct new sequences, want 50", n)
	}
	// Created order equals sequence order.
	if !f.bool(`SELECT bool_and(ok) FROM (SELECT sequence_id > lag(sequence_id, 1, 0::bigint) OVER (ORDER BY created_at, sequence_id) AS ok FROM deployment_objects) s`) {
		t.Error("sequence does not follow creation order")
	}
}
