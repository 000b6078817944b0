package applier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Dir keeps one file per stack in a directory: FileName(stack name) holds the
// stack's latest object byte for byte, and is removed by a deletion marker.
// Each write goes to a temporary file in the same directory (named
// .<file>.tmp-*, so it never looks like a stack's file), is synced, and is
// renamed over the old file: a reader sees the old content or the new, never
// a mix, and a crash leaves at worst a stray temporary file.
//
// Files are named after stack names, which are unique per generator only:
// two stacks of the same name (from different generators) targeted at one
// agent would share a file. Give them distinct names.
type Dir struct {
	dir string
}

// NewDir returns a Dir applier writing into dir, creating dir if needed.
func NewDir(dir string) (*Dir, error) {
	if dir == "" {
		return nil, errors.New("the dir applier needs a directory (--dir)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("dir applier: %w", err)
	}
	return &Dir{dir: dir}, nil
}

// Path is the file that holds the stack's latest object.
func (d *Dir) Path(stackName string) string {
	return filepath.Join(d.dir, FileName(stackName))
}

// Apply writes or removes the stack's file.
func (d *Dir) Apply(ctx context.Context, obj Object) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path := d.Path(obj.StackName)
	if obj.IsDeletionMarker {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing %s: %w", path, err)
		}
		return syncDir(d.dir)
	}
	if err := writeAtomically(path, []byte(obj.YAML)); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// writeAtomically replaces path with content through a synced temporary
// file and a rename, then syncs the directory so the rename survives a crash.
func writeAtomically(path string, content []byte) (err error) {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(content); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// maxSafeName bounds a stack name used as a file name as it is (file systems
// allow 255 bytes; the temporary file adds a prefix and a suffix).
const maxSafeName = 200

// FileName is the file that holds a stack's latest object: "<name>.yaml" when
// the stack name is a safe file name (ASCII letters, digits, '.', '_' and
// '-', not starting with '.', at most 200 bytes); otherwise
// "<name with every other character replaced by '_', cut to 64 bytes>~<the
// first 16 hex digits of the name's SHA-256>.yaml". '~' never occurs in a
// safe name, so the two forms cannot collide, and distinct unsafe names get
// distinct files (barring a 64-bit hash collision). For example "web" gives
// "web.yaml" and "team a/web" gives "team_a_web~<hash>.yaml".
func FileName(stackName string) string {
	if safeName(stackName) {
		return stackName + ".yaml"
	}
	var b strings.Builder
	for i := 0; i < len(stackName) && b.Len() < 64; i++ {
		c := stackName[i]
		if safeByte(c) && !(b.Len() == 0 && c == '.') {
			b.WriteByte(c)
		} else {
			b.WriteByte('_')
		}
	}
	sum := sha256.Sum256([]byte(stackName))
	return b.String() + "~" + hex.EncodeToString(sum[:8]) + ".yaml"
}

func safeName(s string) bool {
	if s == "" || len(s) > maxSafeName || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !safeByte(s[i]) {
			return false
		}
	}
	return true
}

func safeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}
