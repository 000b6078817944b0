package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/apikey"
	"github.com/brokkr/brokkr/models"
)

func TestBearerKey(t *testing.T) {
	t.Parallel()
	key, _, err := apikey.New("generator")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		header string
		want   string
		kind   models.Kind // "" = ok; "none" = ErrNoCredentials
	}{
		{"Bearer " + key, key, ""},
		{"bearer  " + key + " ", key, ""},
		{"", "", "none"},
		{"   ", "", "none"},
		{"Basic " + key, "", models.KindUnauthenticated},
		{"Bearer", "", models.KindUnauthenticated},
		{"Bearer not-a-key", "", models.KindUnauthenticated},
		{key, "", models.KindUnauthenticated},
	}
	for _, c := range cases {
		got, err := BearerKey(c.header)
		switch c.kind {
		case "":
			if err != nil || got != c.want {
				t.Errorf("BearerKey(%q) = %q, %v", c.header, got, err)
			}
		case "none":
			if !errors.Is(err, ErrNoCredentials) {
				t.Errorf("BearerKey(%q): err = %v, want ErrNoCredentials", c.header, err)
			}
		default:
			if models.ErrorKind(err) != c.kind || strings.Contains(err.Error(), key) {
				t.Errorf("BearerKey(%q): err = %v, want %s without the key", c.header, err, c.kind)
			}
		}
	}
}

func TestRateLimiter(t *testing.T) {
	t.Parallel()
	l := NewRateLimiter(2)
	g1 := models.GeneratorScope(uuid.New())
	g2 := models.GeneratorScope(uuid.New())
	for i := range 2 {
		if err := l.Allow(g1); err != nil {
			t.Fatalf("request %d within the burst limited: %v", i, err)
		}
	}
	err := l.Allow(g1)
	var de *models.Error
	if !errors.As(err, &de) || de.Kind != models.KindRateLimited || de.RetryAfter < 1 || de.RetryAfter > 30 {
		t.Fatalf("third request: %v", err)
	}
	if err := l.Allow(g2); err != nil {
		t.Fatalf("another generator limited: %v", err)
	}
	if err := l.Allow(models.AdminScope); err != nil {
		t.Fatalf("admin limited: %v", err)
	}
	if err := l.Allow(models.AgentScope(uuid.New())); err != nil {
		t.Fatalf("agent limited: %v", err)
	}
	// A generator's own limit replaces the default, and a changed limit
	// takes effect with a fresh bucket.
	own := int32(100)
	g1.RateLimitPerMinute = &own
	if err := l.Allow(g1); err != nil {
		t.Fatalf("raised limit not applied: %v", err)
	}
	// Zero or less disables the default.
	if err := NewRateLimiter(0).Allow(g2); err != nil {
		t.Fatalf("disabled limiter limited: %v", err)
	}
}

// Detached keeps what authentication put in a context, and nothing else:
// not its end, not other values.
func TestDetached(t *testing.T) {
	t.Parallel()
	type otherKey struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), otherKey{}, "request state"))
	scope := models.GeneratorScope(uuid.New())
	ctx := WithScope(parent, scope)
	cancel()
	d := Detached(ctx)
	if got, ok := ForContext(d); !ok || got != scope {
		t.Fatalf("scope %+v %v, want %+v", got, ok, scope)
	}
	if d.Err() != nil || d.Value(otherKey{}) != nil {
		t.Fatalf("detached context: err %v, other value %v", d.Err(), d.Value(otherKey{}))
	}
}
