package feed

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// The same object read twice is one value, unless its row or its stack
// changed in between; the kept ones are bounded.
func TestInterned(t *testing.T) {
	t.Parallel()
	at := time.Unix(1700000000, 0)
	read := func(id uuid.UUID, updated, stackUpdated time.Time) *models.DeploymentObject {
		return &models.DeploymentObject{ID: id, UpdatedAt: updated, YamlContent: "x: 1",
			Stack: &models.Stack{UpdatedAt: stackUpdated}}
	}
	var in interned
	id := uuid.New()
	first := in.one(read(id, at, at))
	if again := in.one(read(id, at, at)); again != first {
		t.Fatal("the same object read again is another value")
	}
	deleted := read(id, at, at)
	deleted.DeletedAt = &at
	if got := in.one(deleted); got != deleted {
		t.Fatal("a soft-deleted copy was replaced by the live one kept")
	}
	renamed := read(id, at, at.Add(time.Second))
	if got := in.one(renamed); got != renamed {
		t.Fatal("a copy whose stack changed was replaced by the one kept")
	}
	if got := in.one(read(id, at, at.Add(time.Second))); got != renamed {
		t.Fatal("the newer copy is not the one kept")
	}
	for range 3 * maxInterned {
		in.one(read(uuid.New(), at, at))
	}
	if n := len(in.cur) + len(in.prev); n > 2*maxInterned {
		t.Fatalf("%d objects kept, want at most %d", n, 2*maxInterned)
	}
	if got := in.one(read(id, at, at.Add(time.Second))); got == renamed {
		t.Fatal("an object read long ago is still kept")
	}
}
