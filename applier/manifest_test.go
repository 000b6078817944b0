package applier

import (
	"strings"
	"testing"
)

func TestParseManifestsSplitsDocumentsAndSkipsEmptyOnes(t *testing.T) {
	t.Parallel()
	objs, err := ParseManifests(`# leading comment
---
apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: ns}
---
# only a comment
---
---
{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "b"}}
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || describe(objs[0]) != "ConfigMap ns/a" || describe(objs[1]) != "Widget.example.com b" {
		var got []string
		for _, o := range objs {
			got = append(got, describe(o))
		}
		t.Fatalf("got %v", got)
	}
	if objs, err := ParseManifests(""); err != nil || len(objs) != 0 {
		t.Fatalf("empty content: %v, %v", objs, err)
	}
}

func TestParseManifestsRejectsWhatIsNotAKubernetesObject(t *testing.T) {
	t.Parallel()
	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
	cases := []struct {
		name, yaml, want string
	}{
		{"no kind", cm + "---\napiVersion: v1\nmetadata: {name: b}\n", "document 2: kind is missing (apiVersion v1, name b)"},
		{"no apiVersion", "kind: ConfigMap\nmetadata: {name: b}\n", "document 1: apiVersion is missing (kind ConfigMap, name b)"},
		{"no name", cm + "---\napiVersion: v1\nkind: Secret\nmetadata: {}\n", "document 2: metadata.name is missing (apiVersion v1, kind Secret)"},
		{"blank name", "apiVersion: v1\nkind: Secret\nmetadata: {name: ' '}\n", "metadata.name is missing"},
		{"name not a string", "apiVersion: v1\nkind: Secret\nmetadata: {name: [a]}\n", "document 1: metadata.name must be a string (apiVersion v1, kind Secret)"},
		{"namespace not a string", "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: 3}\n", "metadata.namespace must be a string"},
		{"bad apiVersion", "apiVersion: a/b/c\nkind: Secret\nmetadata: {name: a}\n", `apiVersion "a/b/c" is not group/version`},
		{"a list", "- a\n- b\n", "document 1: a Kubernetes object must be a mapping, not a list"},
		{"a scalar", cm + "---\njust text\n", "document 2: a Kubernetes object must be a mapping, not a string"},
		{"invalid YAML", cm + "---\nkind: [unclosed\n", "document 2: invalid YAML"},
		{"twice", cm + "---\n" + cm, "document 2: ConfigMap a is also document 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseManifests(c.yaml)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseManifests = %v, want an error containing %q", err, c.want)
			}
		})
	}
}
