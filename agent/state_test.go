package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// The state records each stack's last object and the cursor; Save and
// LoadState round-trip it, and LoadState refuses another agent's file.
func TestStateRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	s, err := LoadState(path, "a1")
	if err != nil || s.After != nil || len(s.Stacks) != 0 {
		t.Fatalf("a missing file: %+v, %v", s, err)
	}
	s.record("s1", StackState{Name: "web", SequenceID: 7})
	s.record("s2", StackState{Name: "db", SequenceID: 4}) // handed over below the cursor
	if *s.After != 7 || !s.applied("s1", 7) || !s.applied("s1", 5) || s.applied("s1", 8) || s.applied("s3", 1) {
		t.Fatalf("after two records: %+v", s)
	}
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	again, err := LoadState(path, "a1")
	if err != nil || *again.After != 7 || again.Stacks["s2"].SequenceID != 4 || again.Stacks["s1"].Name != "web" {
		t.Fatalf("loaded %+v, %v", again, err)
	}
	if _, err := LoadState(path, "a2"); err == nil || !strings.Contains(err.Error(), "belongs to agent a1") {
		t.Fatalf("another agent's state: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("Save left %d files behind", len(entries))
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(path, "a1"); err == nil {
		t.Fatal("a corrupt state file was accepted")
	}
}

// truncate keeps the end of a long message, on a UTF-8 boundary.
func TestTruncate(t *testing.T) {
	long := strings.Repeat("é", 40000) + "the error"
	got := truncate(long, maxMessage)
	if len(got) > maxMessage || !utf8.ValidString(got) || !strings.HasSuffix(got, "the error") || !strings.HasPrefix(got, "…") {
		t.Fatalf("truncate: %d bytes, valid %v, end %q", len(got), utf8.ValidString(got), got[len(got)-9:])
	}
	if truncate("short", 10) != "short" {
		t.Fatal("a short message was changed")
	}
}
