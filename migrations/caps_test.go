package migrations_test

import (
	"strings"
	"sync"
	"testing"
)

// capTable is one table whose rows per parent are capped (migration 0004).
type capTable struct {
	table, parentCol string
	insert           string // inserts $2 rows under parent $1, numbered from $3
}

var capTables = []capTable{
	{"stack_labels", "stack_id", `INSERT INTO stack_labels (stack_id, label) SELECT $1, 'l' || i FROM generate_series($3::int, $3::int + $2 - 1) i`},
	{"stack_annotations", "stack_id", `INSERT INTO stack_annotations (stack_id, key, value) SELECT $1, 'k' || i, 'v' FROM generate_series($3::int, $3::int + $2 - 1) i`},
	{"agent_labels", "agent_id", `INSERT INTO agent_labels (agent_id, label) SELECT $1, 'l' || i FROM generate_series($3::int, $3::int + $2 - 1) i`},
	{"agent_annotations", "agent_id", `INSERT INTO agent_annotations (agent_id, key, value) SELECT $1, 'k' || i, 'v' FROM generate_series($3::int, $3::int + $2 - 1) i`},
}

// The database caps labels and annotations at 100 per stack and per agent,
// for every writer (psql included): one statement over the cap, one row
// past it, and a row moved to a full parent are refused with a
// check_violation naming <table>_cap; other parents are not affected.
func TestLabelAndAnnotationCaps(t *testing.T) {
	f := setup(t)
	gen := f.generator("g")
	parents := map[string][2]string{
		"stack_id": {f.stack(gen, "s1"), f.stack(gen, "s2")},
		"agent_id": {f.agent("a1", "c"), f.agent("a2", "c")},
	}
	for _, c := range capTables {
		t.Run(c.table, func(t *testing.T) {
			f := f.with(t)
			full, other := parents[c.parentCol][0], parents[c.parentCol][1]
			wantPgErr(t, f.execErr(c.insert, full, 101, 1), "23514", c.table+"_cap")
			if n := f.int("SELECT count(*) FROM "+c.table+" WHERE "+c.parentCol+" = $1", full); n != 0 {
				t.Fatalf("%d rows left by the refused statement", n)
			}
			f.exec(c.insert, full, 100, 1)
			wantPgErr(t, f.execErr(c.insert, full, 1, 101), "23514", c.table+"_cap")
			f.exec(c.insert, other, 1, 500)
			// Moving a row to the full parent.
			err := f.execErr("UPDATE "+c.table+" SET "+c.parentCol+" = $1 WHERE "+c.parentCol+" = $2", full, other)
			wantPgErr(t, err, "23514", c.table+"_cap")
			// Updating rows in place is fine at the cap.
			f.exec("UPDATE " + c.table + " SET updated_at = now() WHERE " + c.parentCol + " = '" + full + "'")
			if n := f.int("SELECT count(*) FROM "+c.table+" WHERE "+c.parentCol+" = $1", full); n != 100 {
				t.Fatalf("%d rows under the full parent, want 100", n)
			}
		})
	}
}

// Writers racing for the last places under one parent cannot both get
// them: the cap's lock makes the second count the first's committed rows.
func TestLabelCapHoldsUnderConcurrentWriters(t *testing.T) {
	f := setup(t)
	stack := f.stack(f.generator("g"), "s")
	f.exec(capTables[0].insert, stack, 95, 1)
	const writers = 6
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		c := f.conn()
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Exec(f.ctx, capTables[0].insert, stack, 2, 1000+10*i)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			wantPgErr(t, err, "23514", "stack_labels_cap")
		}
	}
	if n := f.int("SELECT count(*) FROM stack_labels WHERE stack_id = $1", stack); n > 100 || n != 95+2*int64(ok) {
		t.Fatalf("%d labels after %d successful writers of 2, want at most 100", n, ok)
	}
	if ok != 2 {
		t.Fatalf("%d writers of 2 labels succeeded from 95, want 2", ok)
	}
}

// An event message is at most 32 KiB of UTF-8, whoever writes it.
func TestEventMessageCap(t *testing.T) {
	f := setup(t)
	stack := f.stack(f.generator("g"), "s")
	obj, _ := f.object(stack, "a: 1")
	agent := f.agent("a", "c")
	ins := `INSERT INTO agent_events (agent_id, deployment_object_id, event_type, status, message) VALUES ($1, $2, 'DEPLOY', 'SUCCESS', $3)`
	f.exec(ins, agent, obj, strings.Repeat("x", 32768))
	wantPgErr(t, f.execErr(ins, agent, obj, strings.Repeat("x", 32769)), "23514", "agent_events_message_check")
	wantPgErr(t, f.execErr(ins, agent, obj, strings.Repeat("é", 16385)), "23514", "agent_events_message_check") // 32770 bytes
	ev := f.event(agent, obj)
	wantPgErr(t, f.execErr(`UPDATE agent_events SET message = $2 WHERE id = $1`, ev, strings.Repeat("x", 40000)), "23514", "agent_events_message_check")
}

// Deleting a generator or an agent clears its key hash, whoever deletes it,
// and a restore does not bring it back; a deleted row takes no key
// (issue 8, item 7).
func TestDeletionRevokesKeys(t *testing.T) {
	f := setup(t)
	const h1, h2 = "1111111111111111111111111111111111111111111111111111111111111111", "2222222222222222222222222222222222222222222222222222222222222222"
	for _, table := range []string{"generators", "agents"} {
		t.Run(table, func(t *testing.T) {
			f := f.with(t)
			var id string
			if table == "generators" {
				id = f.generator("g")
			} else {
				id = f.agent("a", "c")
			}
			hash := func() string {
				return f.str("SELECT coalesce(pak_hash, 'NULL') FROM "+table+" WHERE id = $1", id)
			}
			f.exec("UPDATE "+table+" SET pak_hash = $2 WHERE id = $1", id, h1)
			f.softDelete(table, id)
			if h := hash(); h != "NULL" {
				t.Fatalf("deleted row keeps its key hash %s", h)
			}
			f.exec("UPDATE "+table+" SET pak_hash = $2 WHERE id = $1", id, h2)
			if h := hash(); h != "NULL" {
				t.Fatalf("deleted row took a key hash %s", h)
			}
			f.restore(table, id)
			if h := hash(); h != "NULL" {
				t.Fatalf("restore brought a key back: %s", h)
			}
			f.exec("UPDATE "+table+" SET pak_hash = $2 WHERE id = $1", id, h2) // rotation after restore
			if h := hash(); h != h2 {
				t.Fatalf("restored row did not take a new key: %s", h)
			}
		})
	}
}
