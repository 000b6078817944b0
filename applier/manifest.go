package applier

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// maxDocuments bounds the documents of one object (the broker bounds its
// size; this bounds the work per object all the same).
const maxDocuments = 10000

// ParseManifests splits a deployment object's YAML into Kubernetes objects
// and checks each locally: every document that is not empty (or only
// comments) must be a mapping with a string apiVersion, kind and
// metadata.name; the same object must not appear twice. Errors name the
// document by its position (1 for the first) and, where known, its kind and
// name.
func ParseManifests(content string) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(content)))
	var objs []*unstructured.Unstructured
	seen := map[objectKey]int{}
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: reading YAML: %w", n, err)
		}
		if n > maxDocuments {
			return nil, fmt.Errorf("more than %d YAML documents", maxDocuments)
		}
		obj, err := parseDocument(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if obj == nil {
			continue
		}
		key := keyOf(obj)
		if first, dup := seen[key]; dup {
			return nil, fmt.Errorf("document %d: %s is also document %d", n, describe(obj), first)
		}
		seen[key] = n
		objs = append(objs, obj)
	}
	return objs, nil
}

// parseDocument is nil for an empty document.
func parseDocument(doc []byte) (*unstructured.Unstructured, error) {
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("a Kubernetes object must be a mapping, not %s", yamlType(v))
	}
	obj := &unstructured.Unstructured{Object: m}
	for _, field := range [][]string{{"apiVersion"}, {"kind"}, {"metadata", "name"}} {
		s, found, err := unstructured.NestedString(m, field...)
		name := strings.Join(field, ".")
		switch {
		case err != nil:
			return nil, fmt.Errorf("%s must be a string%s", name, docContext(obj))
		case !found || strings.TrimSpace(s) == "":
			return nil, fmt.Errorf("%s is missing%s", name, docContext(obj))
		}
	}
	if _, err := schema.ParseGroupVersion(obj.GetAPIVersion()); err != nil {
		return nil, fmt.Errorf("apiVersion %q is not group/version or version%s", obj.GetAPIVersion(), docContext(obj))
	}
	if ns, found, err := unstructured.NestedFieldNoCopy(m, "metadata", "namespace"); found && (err != nil || !isString(ns)) {
		return nil, fmt.Errorf("metadata.namespace must be a string%s", docContext(obj))
	}
	return obj, nil
}

func isString(v any) bool { _, ok := v.(string); return ok }

// docContext says what is known of a document that failed validation.
func docContext(obj *unstructured.Unstructured) string {
	var parts []string
	if s, ok := obj.Object["apiVersion"].(string); ok && s != "" {
		parts = append(parts, "apiVersion "+s)
	}
	if s, ok := obj.Object["kind"].(string); ok && s != "" {
		parts = append(parts, "kind "+s)
	}
	if s, _, _ := unstructured.NestedString(obj.Object, "metadata", "name"); s != "" {
		parts = append(parts, "name "+s)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func yamlType(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case string:
		return "a string"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// objectKey identifies an object in a cluster (versions aside: one object
// served at two versions is the same object).
type objectKey struct {
	Group     string `json:"group"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func keyOf(obj *unstructured.Unstructured) objectKey {
	gvk := obj.GroupVersionKind()
	return objectKey{Group: gvk.Group, Kind: gvk.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

// describe is "Kind namespace/name" or "Kind name", for messages.
func describe(obj *unstructured.Unstructured) string {
	return keyOf(obj).String()
}

func (k objectKey) String() string {
	kind := k.Kind
	if k.Group != "" {
		kind += "." + k.Group
	}
	if k.Namespace != "" {
		return kind + " " + k.Namespace + "/" + k.Name
	}
	return kind + " " + k.Name
}
