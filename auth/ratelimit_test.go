package auth

import (
	"testing"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// Spend takes n tokens or none: a request refused for want of tokens
// leaves what was left for a smaller one; one larger than the bucket is
// bad input, not a wait.
func TestRateLimiterSpend(t *testing.T) {
	t.Parallel()
	l := NewRateLimiter(10)
	g := models.GeneratorScope(uuid.New())
	if err := l.Spend(g, 11); models.ErrorKind(err) != models.KindInvalid {
		t.Fatalf("11 tokens of 10: %v, want BAD_USER_INPUT", err)
	}
	if err := l.Spend(g, 8); err != nil {
		t.Fatalf("8 of 10: %v", err)
	}
	if err := l.Spend(g, 3); models.ErrorKind(err) != models.KindRateLimited {
		t.Fatalf("3 with 2 left: %v, want RATE_LIMITED", err)
	}
	if err := l.Spend(g, 2); err != nil {
		t.Fatalf("the refused request took tokens: 2 with 2 left: %v", err)
	}
	if err := l.Spend(models.AdminScope, 1000); err != nil {
		t.Fatalf("admin limited: %v", err)
	}
}
