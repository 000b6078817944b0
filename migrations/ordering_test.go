package migrations_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// seqs are the sequence ids above after, in order, as a reader sees them.
func seqs(t *testing.T, ctx context.Context, c *pgx.Conn, after int64) []int64 {
	t.Helper()
	rows, err := c.Query(ctx, `SELECT sequence_id FROM deployment_objects WHERE sequence_id > $1 ORDER BY sequence_id`, after)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitForAdvisoryLock returns once the backend pid is waiting for an advisory
// lock, and fails the test if it does not within a few seconds.
func (f *fx) waitForAdvisoryLock(pid uint32) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var waiting bool
		err := f.c.QueryRow(f.ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE pid = $1 AND wait_event_type = 'Lock' AND wait_event = 'advisory')`, int64(pid)).Scan(&waiting)
		if err != nil {
			f.t.Fatal(err)
		}
		if waiting {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.t.Fatalf("backend %d never waited for the sequence lock", pid)
}

type result struct {
	seqs []int64
	err  error
}

// DESIGN §3.3: while a transaction holding sequence n is open, no other
// transaction can draw a sequence, so a reader that has seen m never misses
// a smaller one committed later. Every way of creating a deployment object
// (insert, the marker of a stack delete, the republish of a stack restore)
// waits its turn.
func TestSequenceAllocationIsSerialisedWithCommit(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		b    string // B's statement, returning the sequence ids it created; $1 is the stack
		prep func(f *fx, stack string)
	}{
		{"insert", `INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
			VALUES ($1, 'b: 1', encode(sha256('b: 1'::bytea), 'hex')) RETURNING sequence_id`, nil},
		{"stack delete adds a marker", `WITH d AS (UPDATE stacks SET deleted_at = now() WHERE id = $1 RETURNING id)
			SELECT 0::bigint FROM d`, nil},
		{"stack restore republishes", `WITH r AS (UPDATE stacks SET deleted_at = NULL WHERE id = $1 RETURNING id)
			SELECT 0::bigint FROM r`, func(f *fx, stack string) { f.softDelete("stacks", stack) }},
	}
	for _, c := range cases {
		for _, commit := range []bool{true, false} {
			name := c.name + "/A rolls back"
			if commit {
				name = c.name + "/A commits"
			}
			t.Run(name, func(t *testing.T) {
				f := setup(t)
				gen := f.generator("g")
				stackA, stackB := f.stack(gen, "a"), f.stack(gen, "b")
				f.object(stackB, "b: 0")
				if c.prep != nil {
					c.prep(f, stackB)
				}
				base := f.int(`SELECT max(sequence_id) FROM deployment_objects`)

				a, b := f.conn(), f.conn()
				txA, err := a.Begin(f.ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer txA.Rollback(context.WithoutCancel(f.ctx)) //nolint:errcheck
				var n int64
				err = txA.QueryRow(f.ctx, `INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
					VALUES ($1, 'a: 1', encode(sha256('a: 1'::bytea), 'hex')) RETURNING sequence_id`, stackA).Scan(&n)
				if err != nil {
					t.Fatal(err)
				}
				if n <= base {
					t.Fatalf("A got %d, not above %d", n, base)
				}

				done := make(chan result, 1)
				go func() {
					rows, err := b.Query(f.ctx, c.b, stackB)
					if err != nil {
						done <- result{err: err}
						return
					}
					s, err := pgx.CollectRows(rows, pgx.RowTo[int64])
					done <- result{s, err}
				}()

				// B is blocked on the sequence lock while A is open ...
				f.waitForAdvisoryLock(b.PgConn().PID())
				select {
				case r := <-done:
					t.Fatalf("B finished while A was open: %+v", r)
				case <-time.After(100 * time.Millisecond):
				}
				// ... and a reader sees nothing new: A's n is not committed.
				if got := seqs(t, f.ctx, f.c, base); len(got) != 0 {
					t.Fatalf("reader sees %v while A is open", got)
				}

				if commit {
					err = txA.Commit(f.ctx)
				} else {
					err = txA.Rollback(f.ctx)
				}
				if err != nil {
					t.Fatal(err)
				}
				var r result
				select {
				case r = <-done:
				case <-time.After(10 * time.Second):
					t.Fatal("B still blocked after A ended")
				}
				if r.err != nil || len(r.seqs) != 1 {
					t.Fatalf("B: %+v", r)
				}

				got := seqs(t, f.ctx, f.c, base)
				if len(got) == 0 {
					t.Fatal("nothing committed")
				}
				if commit {
					if got[0] != n || len(got) < 2 {
						t.Fatalf("after both committed the reader sees %v, want %d first and then B's", got, n)
					}
				} else if slices.Contains(got, n) || got[0] <= n {
					t.Fatalf("after A rolled back the reader sees %v; want B's above %d and no %d", got, n, n)
				}
			})
		}
	}
}

// Concurrent writers, some rolling back, against a reader that polls
// "sequence_id > cursor" and moves its cursor to the highest it saw: the
// reader must end up having seen every committed object.
func TestPollingReaderNeverMissesAnObject(t *testing.T) {
	f := setup(t)
	gen := f.generator("g")
	const writers, txs = 4, 15
	stacks := make([]string, writers)
	conns := make([]*pgx.Conn, writers)
	for i := range writers {
		stacks[i] = f.stack(gen, "s"+string(rune('a'+i)))
		conns[i] = f.conn()
	}
	reader := f.conn()

	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(i), 7))
			for range txs {
				err := pgx.BeginFunc(f.ctx, conns[i], func(tx pgx.Tx) error {
					for range 1 + rnd.IntN(2) {
						if _, err := tx.Exec(f.ctx, `INSERT INTO deployment_objects (stack_id, yaml_content, yaml_checksum)
							VALUES ($1, 'x: 1', encode(sha256('x: 1'::bytea), 'hex'))`, stacks[i]); err != nil {
							return err
						}
						time.Sleep(time.Duration(rnd.IntN(2000)) * time.Microsecond)
					}
					if rnd.IntN(4) == 0 {
						return errRollback
					}
					return nil
				})
				if err != nil && !errors.Is(err, errRollback) {
					errs <- err
					return
				}
			}
		})
	}
	stop := make(chan struct{})
	go func() { wg.Wait(); close(stop) }()

	seen := map[int64]bool{}
	var cursor int64
	var polls int
	for finished := false; !finished; {
		select {
		case <-stop:
			finished = true // one last poll below
		default:
		}
		for _, s := range seqs(t, f.ctx, reader, cursor) {
			if seen[s] {
				t.Fatalf("sequence %d delivered twice", s)
			}
			seen[s] = true
			cursor = s
		}
		polls++
		time.Sleep(time.Millisecond)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	all := seqs(t, f.ctx, f.c, 0)
	if len(all) < writers*txs/2 {
		t.Fatalf("only %d objects committed", len(all))
	}
	for _, s := range all {
		if !seen[s] {
			t.Errorf("reader missed committed sequence %d (cursor ended at %d after %d polls)", s, cursor, polls)
		}
	}
	if len(seen) != len(all) {
		t.Errorf("reader saw %d objects, %d committed", len(seen), len(all))
	}
	t.Logf("%d objects committed, %d polls", len(all), polls)
}

var errRollback = errors.New("rollback on purpose")
