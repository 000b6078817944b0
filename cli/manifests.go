package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/brokkr/brokkr/applier"
)

// manifest is one file's content, named for messages.
type manifest struct {
	name    string
	content string
}

// readManifests reads the files given, in order: a directory contributes
// its *.yaml and *.yml files, recursively, sorted by path (hidden
// directories and files, such as .git, are skipped); "-" is standard
// input.
func readManifests(paths []string, stdin io.Reader) ([]manifest, error) {
	var out []manifest
	for _, p := range paths {
		if p == "-" {
			b, err := io.ReadAll(stdin)
			if err != nil {
				return nil, fmt.Errorf("reading standard input: %w", err)
			}
			out = append(out, manifest{name: "standard input", content: string(b)})
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		files := []string{p}
		if info.IsDir() {
			if files, err = yamlFiles(p); err != nil {
				return nil, err
			}
			if len(files) == 0 {
				return nil, fmt.Errorf("%s: no *.yaml or *.yml files in it", p)
			}
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			out = append(out, manifest{name: f, content: string(b)})
		}
	}
	return out, nil
}

// yamlFiles lists dir's YAML files, recursively, sorted by path.
func yamlFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		hidden := path != dir && strings.HasPrefix(d.Name(), ".")
		if d.IsDir() {
			if hidden {
				return filepath.SkipDir
			}
			return nil
		}
		ext := strings.ToLower(filepath.Ext(path))
		if !hidden && (ext == ".yaml" || ext == ".yml") && d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	sort.Slice(files, func(i, j int) bool { return filepath.ToSlash(files[i]) < filepath.ToSlash(files[j]) })
	return files, err
}

// joinManifests is the deployment object's content: the files' contents,
// each ending in a newline, joined with "---" lines.
func joinManifests(ms []manifest) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteString("---\n")
		}
		b.WriteString(m.content)
		if m.content != "" && !strings.HasSuffix(m.content, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// Local validation modes of push.
const (
	validateKubernetes = "kubernetes"
	validateYAML       = "yaml"
)

// validateManifests checks the files before anything is sent: each must
// parse, and with mode kubernetes each document must be a Kubernetes
// object (applier.ParseManifests: apiVersion, kind, metadata.name) and no
// object may appear twice across the files. At least one document must not
// be empty.
func validateManifests(ms []manifest, mode string) error {
	count := 0
	for _, m := range ms {
		n, err := validateOne(m.content, mode)
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		count += n
	}
	if count == 0 {
		return errors.New("nothing to publish: the files hold no YAML document that is not empty")
	}
	if mode == validateKubernetes && len(ms) > 1 {
		if _, err := applier.ParseManifests(joinManifests(ms)); err != nil {
			return fmt.Errorf("the files together (documents numbered across them, in order): %w", err)
		}
	}
	return nil
}

// validateOne checks one file and counts its non-empty documents.
func validateOne(content, mode string) (int, error) {
	switch mode {
	case validateKubernetes:
		objs, err := applier.ParseManifests(content)
		return len(objs), err
	case validateYAML:
		r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(content)))
		n := 0
		for i := 1; ; i++ {
			doc, err := r.Read()
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			if err != nil {
				return 0, fmt.Errorf("document %d: %w", i, err)
			}
			var v any
			if err := yaml.Unmarshal(doc, &v); err != nil {
				return 0, fmt.Errorf("document %d: invalid YAML: %w", i, err)
			}
			if v != nil {
				n++
			}
		}
	}
	return 0, usage(fmt.Errorf("--validate must be %s or %s, not %q", validateKubernetes, validateYAML, mode))
}
