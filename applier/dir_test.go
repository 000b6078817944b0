package applier

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dirEntries lists the names in dir (temporary files included).
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestDirKeepsTheLatestObjectAndRemovesItOnADeletionMarker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "out") // created by NewDir
	d, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "web.yaml")
	steps := []struct {
		name    string
		obj     Object
		want    string // file content; "" means no file
		wantDir []string
	}{
		{"first", Object{StackID: "s1", StackName: "web", SequenceID: 1, YAML: "a: 1\n"}, "a: 1\n", []string{"web.yaml"}},
		// Byte for byte: no trailing newline added, none removed.
		{"update", Object{StackID: "s1", StackName: "web", SequenceID: 2, YAML: "a: 2\n---\nb: 3"}, "a: 2\n---\nb: 3", []string{"web.yaml"}},
		{"deletion marker", Object{StackID: "s1", StackName: "web", SequenceID: 3, IsDeletionMarker: true}, "", nil},
		{"deletion marker again", Object{StackID: "s1", StackName: "web", SequenceID: 4, IsDeletionMarker: true}, "", nil},
		{"restored", Object{StackID: "s1", StackName: "web", SequenceID: 5, YAML: "a: 5\n"}, "a: 5\n", []string{"web.yaml"}},
	}
	for _, s := range steps {
		if err := d.Apply(ctx, s.obj); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got, err := os.ReadFile(path)
		switch {
		case s.want == "" && !os.IsNotExist(err):
			t.Fatalf("%s: %s should not exist (err %v)", s.name, path, err)
		case s.want != "" && string(got) != s.want:
			t.Fatalf("%s: %s holds %q, want %q (err %v)", s.name, path, got, s.want, err)
		}
		// No temporary file is left behind.
		if got := strings.Join(dirEntries(t, dir), ","); got != strings.Join(s.wantDir, ",") {
			t.Fatalf("%s: directory holds [%s], want %v", s.name, got, s.wantDir)
		}
	}
}

func TestDirReplacesTheFileAtomically(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	d, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(ctx, Object{StackName: "web", YAML: "old\n"}); err != nil {
		t.Fatal(err)
	}
	// A reader that opened the old file keeps reading the old content: the
	// new one arrived by rename, not by rewriting the file in place.
	f, err := os.Open(d.Path("web"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := d.Apply(ctx, Object{StackName: "web", YAML: "new content\n"}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := f.Read(buf)
	if string(buf[:n]) != "old\n" {
		t.Fatalf("the open file now reads %q: it was rewritten in place", buf[:n])
	}
	if got, _ := os.ReadFile(d.Path("web")); string(got) != "new content\n" {
		t.Fatalf("file holds %q", got)
	}
}

func TestDirReportsFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	d, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A directory where the stack's file should be: the rename fails.
	if err := os.MkdirAll(filepath.Join(dir, "web.yaml", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	err = d.Apply(ctx, Object{StackName: "web", YAML: "a: 1\n"})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "web.yaml")) {
		t.Fatalf("Apply = %v, want an error naming the file", err)
	}
	if got := dirEntries(t, dir); len(got) != 1 {
		t.Fatalf("directory holds %v after a failed write, want only web.yaml (no temporary file)", got)
	}
	err = d.Apply(ctx, Object{StackName: "web", IsDeletionMarker: true})
	if err == nil || !strings.Contains(err.Error(), "removing") {
		t.Fatalf("deletion marker = %v, want an error removing the file", err)
	}
	if _, err := NewDir(""); err == nil {
		t.Fatal("NewDir(\"\") succeeded")
	}
}

func TestDirFileNames(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 255)
	cases := []struct {
		stack string
		want  string // exact name, or a prefix ending in '~' for hashed names
	}{
		{"web", "web.yaml"},
		{"Web-1.prod_eu", "Web-1.prod_eu.yaml"},
		{"team a/web", "team_a_web~"},
		{"../../etc/passwd", "_._.._etc_passwd~"},
		{".", "_~"},
		{"..", "_.~"},
		{".hidden", "_hidden~"},
		{"tilde~1", "tilde_1~"},
		{"été", "__t__~"},
		{long, strings.Repeat("x", 64) + "~"},
	}
	seen := map[string]string{}
	for _, c := range cases {
		got := FileName(c.stack)
		if strings.HasSuffix(c.want, "~") {
			if !strings.HasPrefix(got, c.want) || len(got) != len(c.want)+16+len(".yaml") {
				t.Errorf("FileName(%q) = %q, want %s<16 hex digits>.yaml", c.stack, got, c.want)
			}
		} else if got != c.want {
			t.Errorf("FileName(%q) = %q, want %q", c.stack, got, c.want)
		}
		if strings.ContainsRune(got, '/') || strings.HasPrefix(got, ".") || len(got) > 255 {
			t.Errorf("FileName(%q) = %q is not a safe file name", c.stack, got)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("FileName(%q) = FileName(%q) = %q", c.stack, other, got)
		}
		seen[got] = c.stack
	}
	// Names that differ only in unsafe characters still get distinct files.
	if FileName("a/b") == FileName("a b") {
		t.Error(`FileName("a/b") == FileName("a b")`)
	}
	// An unsafe name is written inside the directory, nowhere else.
	dir := t.TempDir()
	d, err := NewDir(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(context.Background(), Object{StackName: "../escape", YAML: "x\n"}); err != nil {
		t.Fatal(err)
	}
	if got := dirEntries(t, dir); len(got) != 1 || got[0] != "out" {
		t.Fatalf("%s holds %v, want only out/", dir, got)
	}
	if got := dirEntries(t, filepath.Join(dir, "out")); len(got) != 1 || got[0] != FileName("../escape") {
		t.Fatalf("out/ holds %v", got)
	}
}
