package migrations_test

import (
	"context"
	"testing"
	"time"
)

// orphans counts rows that break the cascade rules: live children of
// soft-deleted parents, and deleted stacks without a live marker.
const orphans = `SELECT
	(SELECT count(*) FROM deployment_objects d JOIN stacks s ON s.id = d.stack_id
	  WHERE s.deleted_at IS NOT NULL AND d.deleted_at IS NULL AND NOT d.is_deletion_marker)
	+ (SELECT count(*) FROM stacks s JOIN generators g ON g.id = s.generator_id
	  WHERE g.deleted_at IS NOT NULL AND s.deleted_at IS NULL)
	+ (SELECT count(*) FROM agent_events e JOIN agents a ON a.id = e.agent_id
	  WHERE a.deleted_at IS NOT NULL AND e.deleted_at IS NULL)
	+ (SELECT count(*) FROM stacks s WHERE s.deleted_at IS NOT NULL AND NOT EXISTS (
	  SELECT 1 FROM deployment_objects d WHERE d.stack_id = s.id AND d.is_deletion_marker AND d.deleted_at IS NULL))`

// A soft delete racing with the creation of a child: whichever commits
// first, no live child of a deleted parent survives. The first statement
// runs in a transaction left open while the second starts on another
// connection; then the first commits.
func TestSoftDeleteRacingWithANewChild(t *testing.T) {
	t.Parallel()
	const (
		newObject = `INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
			SELECT id, 'n: 1', encode(sha256('n: 1'::bytea), 'hex') FROM stacks WHERE name = 's'`
		deleteStack = `UPDATE stacks SET deleted_at = now() WHERE name = 's'`
		newStack    = `INSERT INTO stacks (generator_id, name) SELECT id, 'new' FROM generators`
		deleteGen   = `UPDATE generators SET deleted_at = now()`
		newEvent    = `INSERT INTO agent_events (agent_id, deployment_object_id, event_type, status)
			SELECT a.id, d.id, 'DEPLOY', 'OK' FROM agents a, deployment_objects d`
		deleteAgent   = `UPDATE agents SET deleted_at = now()`
		restoreObject = `UPDATE deployment_objects SET deleted_at = NULL WHERE yaml_content = 'old: 1'`
	)
	cases := []struct {
		name          string
		first, second string
		secondFails   bool // with BR002: the parent was deleted first
	}{
		{"object, then stack delete", newObject, deleteStack, false},
		{"stack delete, then object", deleteStack, newObject, true},
		{"stack, then generator delete", newStack, deleteGen, false},
		{"generator delete, then stack", deleteGen, newStack, true},
		{"event, then agent delete", newEvent, deleteAgent, false},
		{"agent delete, then event", deleteAgent, newEvent, true},
		{"object restore, then stack delete", restoreObject, deleteStack, false},
		{"stack delete, then object restore", deleteStack, restoreObject, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t)
			stack := f.stack(f.generator("g"), "s")
			f.object(stack, "a: 1")
			old, _ := f.object(stack, "old: 1")
			f.softDelete("deployment_objects", old)
			f.agent("a", "c")

			first, second := f.conn(), f.conn()
			tx, err := first.Begin(f.ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.WithoutCancel(f.ctx)) //nolint:errcheck
			if _, err := tx.Exec(f.ctx, c.first); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := second.Exec(f.ctx, c.second)
				done <- err
			}()
			// Give the second statement time to run as far as it can while
			// the first transaction is open.
			f.waitUntilBlockedOrDone(second.PgConn().PID(), done)
			if err := tx.Commit(f.ctx); err != nil {
				t.Fatal(err)
			}
			var secondErr error
			select {
			case secondErr = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("second statement still blocked after the first committed")
			}
			if c.secondFails {
				wantPgErr(t, secondErr, "BR002", "")
			} else if secondErr != nil {
				t.Fatalf("second statement: %v", secondErr)
			}
			if n := f.int(orphans); n != 0 {
				t.Errorf("%d rows break the cascade rules after the race", n)
			}
		})
	}
}

// waitUntilBlockedOrDone waits until the backend pid waits for a lock, or
// the statement reporting on done has finished (the result is put back), or
// a second has passed.
func (f *fx) waitUntilBlockedOrDone(pid uint32, done chan error) {
	f.t.Helper()
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err
			return
		default:
		}
		var waiting bool
		err := f.c.QueryRow(f.ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE pid = $1 AND wait_event_type = 'Lock')`, int64(pid)).Scan(&waiting)
		if err != nil {
			f.t.Fatal(err)
		}
		if waiting {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}
