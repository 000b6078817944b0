package apikey_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/brokkr/brokkr/apikey"
)

func TestNewShapeAndHash(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		key, hash, err := apikey.New("generator")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(key, "brokkr_") || len(key) != apikey.Len {
			t.Fatalf("bad key shape %q", key)
		}
		parts := strings.Split(key, "_")
		if len(parts) != 3 || len(parts[1]) != 8 || len(parts[2]) < 43 {
			t.Fatalf("want brokkr_<8>_<43>, got %q", key)
		}
		if !apikey.Parse(key) {
			t.Fatalf("Parse rejects a fresh key %q", key)
		}
		sum := sha256.Sum256([]byte(key))
		if want := hex.EncodeToString(sum[:]); hash != want || apikey.Hash(key) != want {
			t.Fatalf("hash %q, want %q", hash, want)
		}
		if apikey.Short(key) != parts[1] {
			t.Fatalf("Short(%q) = %q", key, apikey.Short(key))
		}
		if seen[key] || seen[parts[1]] {
			t.Fatalf("repeated key or short id after %d keys", i)
		}
		seen[key], seen[parts[1]] = true, true
	}
}

func TestHashKnownVector(t *testing.T) {
	t.Parallel()
	// sha256("abc")
	if got := apikey.Hash("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("Hash(abc) = %s", got)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	good, _, err := apikey.New("agent")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"",
		"brokkr_",
		"Bearer " + good,
		good + "x",
		good[:len(good)-1],
		strings.Replace(good, "brokkr_", "brokkx_", 1),
		good[:15] + "-" + good[16:], // separator replaced
		good[:20] + "!" + good[21:], // non-base62 in the secret
		good[:8] + "+" + good[9:],   // non-base62 in the short id
	} {
		if apikey.Parse(s) {
			t.Errorf("Parse(%q) = true", s)
		}
		if apikey.Short(s) != "" {
			t.Errorf("Short(%q) != \"\"", s)
		}
	}
}

func TestEqual(t *testing.T) {
	t.Parallel()
	a, _, _ := apikey.New("admin")
	b, _, _ := apikey.New("admin")
	if !apikey.Equal(a, a) || !apikey.Equal(apikey.Hash(a), apikey.Hash(a)) {
		t.Fatal("Equal(x, x) = false")
	}
	if apikey.Equal(a, b) || apikey.Equal(a, a[:len(a)-1]) || apikey.Equal("", a) {
		t.Fatal("Equal of different keys = true")
	}
}
