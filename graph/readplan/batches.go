package readplan

import (
	"fmt"
	"slices"

	"github.com/google/uuid"
)

// The executor reads the pages of the objects one statement returned (a
// cohort of two or more) per cohort and arguments. The pages of an object
// read alone (stack(id), viewer.generator, a one-row page) go through the
// loader's timed batch instead, which collects the keys that arrive within
// a few milliseconds, reads every argument set of them and fails whole when
// one of them fails (graph.paged): a page field then answers the error of
// another page field of its kind that its loader read in the same batch,
// say FORBIDDEN for an includeDeleted it does not have itself.
//
// Which fields share a batch is a matter of timing in the executor. The
// planner models it after the reads, from what they found: a read through
// a timed batch waits one unit, a root resolver's statement, a cohort's
// fetch or keys a loader has already read none; the relation fields of an object resolve at once, the fields
// of a connection, an edge or the viewer one after the other (they have no
// resolvers). Page fields of one kind read alone at the same time share
// the error of the first of them, in document order, that failed before
// reading. This is what the executor does on an idle machine.

// poison gives page fields the errors the executor's batches give them.
func (x *exec) poison() {
	if !slices.ContainsFunc(x.p.rels, func(r *rel) bool { return r.spec.kind == kindPage && r.err != nil }) {
		return // no page field fails before reading
	}
	tm := &timing{x: x, start: map[*rel]int{}, loaded: map[loadKey]int{}}
	tm.selection(x.p.root, 0)
	type batch struct {
		at   int
		spec *relSpec
	}
	first := map[batch]error{}
	var alone []*rel
	for _, r := range x.p.rels { // document order
		if r.spec.kind != kindPage || len(x.res[r.parent.idx].objs) != 1 {
			continue
		}
		alone = append(alone, r)
		if b := (batch{tm.start[r], r.spec}); r.err != nil && first[b] == nil {
			first[b] = r.err
		}
	}
	for _, r := range alone {
		if err := first[batch{tm.start[r], r.spec}]; err != nil && r.err == nil && x.res[r.idx].err == nil {
			x.res[r.idx].err = err
		}
	}
}

// timing is when the executor reads each relation.
type timing struct {
	x     *exec
	start map[*rel]int
	// loaded is when each loader has each key (loaders cache what they
	// read, and a cohort's fetch primes them).
	loaded map[loadKey]int
}

type loadKey struct {
	loader string
	key    uuid.UUID
}

// selection records when the relations of s are read, its fields starting
// to resolve at t; it returns when their reads end.
func (tm *timing) selection(s *selection, t int) int {
	end, at := t, t
	for _, f := range s.fields {
		if s.serial {
			t = at // after the field before has resolved
		}
		e := t
		if f.rel != nil {
			tm.start[f.rel] = t
			e += tm.waits(f.rel, t)
		}
		if f.sel != nil {
			e = max(e, tm.selection(f.sel, e))
		}
		end, at = max(end, e), max(at, e)
	}
	return end
}

// waits is how many timed batches the executor waits for to read r from t.
func (tm *timing) waits(r *rel, t int) int {
	x := tm.x
	switch r.spec.kind {
	case kindGet, kindList, kindViewer, kindViewerEntity:
		return 0 // a root resolver's own statement
	}
	keys, w := x.keys(r), timed(len(x.res[r.parent.idx].objs))
	switch r.spec.kind {
	case kindEntity:
		return tm.load("entity "+r.spec.target.name, keys, t, w)
	case kindTargets:
		return tm.load("targets "+r.spec.parentCol, keys, t, w)
	case kindMapped:
		n := tm.load("targets "+r.spec.parentCol, keys, t, w)
		return n + tm.load("entity "+r.spec.target.name, x.behindKeys(r), t+n, timed(len(x.res[r.idx].behind)))
	}
	return tm.load(fmt.Sprintf("%p %s", r.spec, r.argsKey), keys, t, w)
}

// load is the wait of a loader reading keys at t: none when it has them
// all already (or there are none), else w (a timed batch, or none for a
// cohort).
func (tm *timing) load(loader string, keys []uuid.UUID, t, w int) int {
	cached := true // with no keys, nothing is read
	for _, k := range keys {
		if at, ok := tm.loaded[loadKey{loader, k}]; !ok || at > t {
			cached = false
			break
		}
	}
	if cached {
		return 0
	}
	for _, k := range keys {
		if _, ok := tm.loaded[loadKey{loader, k}]; !ok {
			tm.loaded[loadKey{loader, k}] = t + w
		}
	}
	return w
}

// timed is 1 when the objects of one read are no cohort: their edges are
// read through the loaders' timed batches.
func timed(objects int) int {
	if objects < 2 {
		return 1
	}
	return 0
}
