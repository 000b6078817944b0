package feed

import (
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// interned makes one deployment object one value: the hub reads the same
// object many times over (a batch for every agent carrying its stack, the
// latest object of a stack for every feed that starts, a replay for every
// agent that resumes after a reconnect storm), and a value handed to many
// subscribers is encoded once for all those asking the same fields of it
// (wstransport's encodings) instead of once each. Objects are immutable
// rows; a copy read later whose row or stack has changed since (a soft
// delete, a stack renamed) replaces the one kept. Entries go by
// generations of maxInterned objects, or maxInternedBytes of YAML.
type interned struct {
	mu        sync.Mutex
	cur, prev map[uuid.UUID]*models.DeploymentObject
	bytes     int
}

const (
	maxInterned      = 4096
	maxInternedBytes = 32 << 20
)

// one returns the value kept for o's object if it is still o as read, else
// keeps o.
func (in *interned) one(o *models.DeploymentObject) *models.DeploymentObject {
	in.mu.Lock()
	defer in.mu.Unlock()
	kept, ok := in.cur[o.ID]
	if !ok {
		kept, ok = in.prev[o.ID]
	}
	if ok && sameRead(kept, o) {
		if _, cur := in.cur[o.ID]; !cur {
			in.keep(kept)
		}
		return kept
	}
	in.keep(o)
	return o
}

// all interns each of objs in place.
func (in *interned) all(objs []*models.DeploymentObject) []*models.DeploymentObject {
	for i, o := range objs {
		objs[i] = in.one(o)
	}
	return objs
}

func (in *interned) keep(o *models.DeploymentObject) {
	if in.cur == nil || len(in.cur) >= maxInterned || in.bytes+len(o.YamlContent) > maxInternedBytes {
		in.prev, in.cur, in.bytes = in.cur, map[uuid.UUID]*models.DeploymentObject{}, 0
	}
	in.cur[o.ID] = o
	in.bytes += len(o.YamlContent)
}

// sameRead tells whether b, read later, is a as read before: same row
// version and the same stack version.
func sameRead(a, b *models.DeploymentObject) bool {
	if !a.UpdatedAt.Equal(b.UpdatedAt) || !sameTime(a.DeletedAt, b.DeletedAt) || (a.Stack == nil) != (b.Stack == nil) {
		return false
	}
	if a.Stack == nil {
		return true
	}
	return a.Stack.UpdatedAt.Equal(b.Stack.UpdatedAt) && sameTime(a.Stack.DeletedAt, b.Stack.DeletedAt)
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}
