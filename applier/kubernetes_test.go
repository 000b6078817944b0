package applier

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/brokkr/brokkr/localkube/kubetest"
)

// These tests run against the real kube-apiserver and etcd of package
// localkube (see kubetest). No controller manager runs there, so a deleted
// Namespace stays Terminating: the tests check that it was deleted (it has a
// deletionTimestamp), not that it is gone.

// The documents the tests combine; {s} stands for the test's suffix.
var docs = map[string]string{
	"ns": `apiVersion: v1
kind: Namespace
metadata:
  name: t-{s}
`,
	"cm-a": `apiVersion: v1
kind: ConfigMap
metadata:
  name: a
  namespace: t-{s}
  labels: {app: demo}
data:
  greeting: hello
`,
	"cm-a2": `apiVersion: v1
kind: ConfigMap
metadata:
  name: a
  namespace: t-{s}
data:
  greeting: hello again
`,
	"cm-b": `apiVersion: v1
kind: ConfigMap
metadata: {name: b, namespace: t-{s}}
data: {count: "1"}
`,
	"cm-default": `apiVersion: v1
kind: ConfigMap
metadata: {name: d-{s}}
`,
	"crd": `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.w-{s}.example.com
spec:
  group: w-{s}.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
`,
	"cr": `apiVersion: w-{s}.example.com/v1
kind: Widget
metadata: {name: w, namespace: t-{s}}
spec: {size: 3}
`,
}

var (
	nsGVR  = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	cmGVR  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	crdGVR = crdResource
)

type kubeEnv struct {
	t       *testing.T
	k       *Kubernetes
	dyn     dynamic.Interface
	suffix  string
	stackID string
}

func newKubeEnv(t *testing.T) *kubeEnv {
	t.Helper()
	return newKubeEnvWith(t, KubernetesOptions{})
}

func newKubeEnvWith(t *testing.T, opts KubernetesOptions) *kubeEnv {
	t.Helper()
	cfg := kubetest.Config(t)
	k, err := NewKubernetes(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := kubetest.Suffix()
	return &kubeEnv{t: t, k: k, dyn: dyn, suffix: s, stackID: "stack-" + s}
}

// bundle joins the named documents, in that order, into one object's YAML.
func (e *kubeEnv) bundle(names ...string) string {
	var parts []string
	for _, n := range names {
		parts = append(parts, strings.ReplaceAll(docs[n], "{s}", e.suffix))
	}
	return strings.Join(parts, "---\n")
}

func (e *kubeEnv) apply(seq int64, names ...string) error {
	return e.k.Apply(context.Background(), Object{StackID: e.stackID, StackName: "demo " + e.suffix, SequenceID: seq, YAML: e.bundle(names...)})
}

func (e *kubeEnv) mustApply(seq int64, names ...string) {
	e.t.Helper()
	if err := e.apply(seq, names...); err != nil {
		e.t.Fatalf("applying %v: %v", names, err)
	}
}

func (e *kubeEnv) deletionMarker(seq int64) error {
	return e.k.Apply(context.Background(), Object{StackID: e.stackID, StackName: "demo " + e.suffix, SequenceID: seq, IsDeletionMarker: true})
}

func (e *kubeEnv) widgets() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "w-" + e.suffix + ".example.com", Version: "v1", Resource: "widgets"}
}

func (e *kubeEnv) ns() string { return "t-" + e.suffix }

func (e *kubeEnv) get(gvr schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, error) {
	var ri dynamic.ResourceInterface = e.dyn.Resource(gvr)
	if ns != "" {
		ri = e.dyn.Resource(gvr).Namespace(ns)
	}
	return ri.Get(context.Background(), name, metav1.GetOptions{})
}

func (e *kubeEnv) mustGet(gvr schema.GroupVersionResource, ns, name string) *unstructured.Unstructured {
	e.t.Helper()
	obj, err := e.get(gvr, ns, name)
	if err != nil {
		e.t.Fatalf("%s %s/%s: %v", gvr.Resource, ns, name, err)
	}
	return obj
}

// gone waits until the object is not found (deletion with finalizers, such
// as a CRD's, completes in the background).
func (e *kubeEnv) gone(gvr schema.GroupVersionResource, ns, name string) {
	e.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := e.get(gvr, ns, name)
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s %s/%s still there a minute after its deletion (err %v)", gvr.Resource, ns, name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// inventory is the stack's inventory ConfigMap's object list, or nil
// when there is none.
func (e *kubeEnv) inventory() []objectKey {
	e.t.Helper()
	cm, err := e.get(cmGVR, e.k.opts.InventoryNamespace, InventoryName(e.stackID))
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	raw, _, _ := unstructured.NestedString(cm.Object, "data", "objects")
	keys := []objectKey{}
	if err := json.Unmarshal([]byte(raw), &keys); err != nil {
		e.t.Fatal(err)
	}
	return keys
}

func keyStrings(keys []objectKey) string {
	var s []string
	for _, k := range keys {
		s = append(s, k.String())
	}
	return strings.Join(s, ", ")
}

func TestKubernetesAppliesNamespacesAndCRDsFirstAndLabelsEverything(t *testing.T) {
	t.Parallel()
	e := newKubeEnv(t)
	// The custom resource comes first and its namespace and CRD last: the
	// applier must reorder them, and wait for the CRD.
	e.mustApply(7, "cr", "cm-a", "cm-default", "crd", "ns")

	objs := map[string]*unstructured.Unstructured{
		"namespace":     e.mustGet(nsGVR, "", e.ns()),
		"configmap":     e.mustGet(cmGVR, e.ns(), "a"),
		"default ns cm": e.mustGet(cmGVR, "default", "d-"+e.suffix),
		"crd":           e.mustGet(crdGVR, "", "widgets.w-"+e.suffix+".example.com"),
		"widget":        e.mustGet(e.widgets(), e.ns(), "w"),
	}
	for what, obj := range objs {
		if got := obj.GetLabels()[StackLabel]; got != e.stackID {
			t.Errorf("%s has %s=%q, want %q", what, StackLabel, got, e.stackID)
		}
		managers := map[string]metav1.ManagedFieldsOperationType{}
		for _, mf := range obj.GetManagedFields() {
			managers[mf.Manager] = mf.Operation
		}
		if managers["brokkr"] != metav1.ManagedFieldsOperationApply {
			t.Errorf("%s managed fields %v: want manager brokkr with operation Apply", what, managers)
		}
	}
	if got := objs["configmap"].GetLabels()["app"]; got != "demo" {
		t.Errorf("the object's own label app=%q was lost", got)
	}
	if size, _, _ := unstructured.NestedInt64(objs["widget"].Object, "spec", "size"); size != 3 {
		t.Errorf("widget spec.size = %d, want 3", size)
	}
	want := "Namespace t-{s}, CustomResourceDefinition.apiextensions.k8s.io widgets.w-{s}.example.com, " +
		"Widget.w-{s}.example.com t-{s}/w, ConfigMap t-{s}/a, ConfigMap default/d-{s}"
	if got := keyStrings(e.inventory()); got != strings.ReplaceAll(want, "{s}", e.suffix) {
		t.Errorf("inventory lists %s\nwant %s", got, strings.ReplaceAll(want, "{s}", e.suffix))
	}
	inv := e.mustGet(cmGVR, "brokkr-system", InventoryName(e.stackID))
	if data := inv.Object["data"].(map[string]any); data["sequenceId"] != "7" || data["stackName"] != "demo "+e.suffix {
		t.Errorf("inventory data %v", data)
	}
}

func TestKubernetesReapplyChangesNothing(t *testing.T) {
	t.Parallel()
	e := newKubeEnv(t)
	all := []string{"ns", "crd", "cr", "cm-a", "cm-b"}
	e.mustApply(1, all...)
	versions := func() map[string]string {
		return map[string]string{
			"namespace": e.mustGet(nsGVR, "", e.ns()).GetResourceVersion(),
			"crd":       e.mustGet(crdGVR, "", "widgets.w-"+e.suffix+".example.com").GetResourceVersion(),
			"widget":    e.mustGet(e.widgets(), e.ns(), "w").GetResourceVersion(),
			"a":         e.mustGet(cmGVR, e.ns(), "a").GetResourceVersion(),
			"b":         e.mustGet(cmGVR, e.ns(), "b").GetResourceVersion(),
		}
	}
	before := versions()
	e.mustApply(1, all...) // the same object again (an agent restart)
	e.mustApply(2, all...) // a new object with the same content
	after := versions()
	for what, rv := range before {
		if after[what] != rv {
			t.Errorf("%s changed on re-apply: resourceVersion %s -> %s", what, rv, after[what])
		}
	}
	if got := len(e.inventory()); got != len(all) {
		t.Errorf("inventory lists %d objects, want %d", got, len(all))
	}
}

func TestKubernetesPrunesWhatTheNextObjectDrops(t *testing.T) {
	t.Parallel()
	e := newKubeEnv(t)
	e.mustApply(1, "ns", "crd", "cr", "cm-a", "cm-b")
	e.mustApply(2, "ns", "cm-a2")

	a := e.mustGet(cmGVR, e.ns(), "a")
	if got, _, _ := unstructured.NestedString(a.Object, "data", "greeting"); got != "hello again" {
		t.Errorf("ConfigMap a was not updated: greeting %q", got)
	}
	if _, found := a.GetLabels()["app"]; found {
		t.Errorf("label app, which the new object drops, is still on ConfigMap a: %v", a.GetLabels())
	}
	e.gone(cmGVR, e.ns(), "b")
	e.gone(e.widgets(), e.ns(), "w")
	e.gone(crdGVR, "", "widgets.w-"+e.suffix+".example.com")
	if got, want := keyStrings(e.inventory()), "Namespace t-{s}, ConfigMap t-{s}/a"; got != strings.ReplaceAll(want, "{s}", e.suffix) {
		t.Errorf("inventory lists %s", got)
	}
	// The namespace the stack still declares is left alone.
	if ns := e.mustGet(nsGVR, "", e.ns()); ns.GetDeletionTimestamp() != nil {
		t.Error("the namespace was deleted though the new object keeps it")
	}
}

func TestKubernetesDeletionMarkerRemovesEverythingTheStackApplied(t *testing.T) {
	t.Parallel()
	e := newKubeEnv(t)
	e.mustApply(1, "ns", "crd", "cr", "cm-a", "cm-default")
	if err := e.deletionMarker(2); err != nil {
		t.Fatal(err)
	}
	e.gone(cmGVR, e.ns(), "a")
	e.gone(cmGVR, "default", "d-"+e.suffix)
	e.gone(e.widgets(), e.ns(), "w")
	e.gone(crdGVR, "", "widgets.w-"+e.suffix+".example.com")
	ns, err := e.get(nsGVR, "", e.ns())
	if err == nil && ns.GetDeletionTimestamp() == nil {
		t.Error("the stack's namespace was not deleted")
	}
	if inv := e.inventory(); inv != nil {
		t.Errorf("the inventory survived the deletion marker: %s", keyStrings(inv))
	}
	// Again, and for a stack that never applied anything: nothing to do.
	if err := e.deletionMarker(3); err != nil {
		t.Fatalf("second deletion marker: %v", err)
	}
	other := newKubeEnv(t)
	if err := other.deletionMarker(4); err != nil {
		t.Fatalf("deletion marker of a stack that applied nothing: %v", err)
	}
}

func TestKubernetesNeverDeletesTheInventoryNamespace(t *testing.T) {
	t.Parallel()
	suffix := kubetest.Suffix()
	e := newKubeEnvWith(t, KubernetesOptions{InventoryNamespace: "t-" + suffix})
	e.suffix = suffix // the stack declares the inventory namespace as its own
	e.mustApply(1, "ns", "cm-a")
	if err := e.deletionMarker(2); err != nil {
		t.Fatal(err)
	}
	e.gone(cmGVR, e.ns(), "a")
	if ns := e.mustGet(nsGVR, "", e.ns()); ns.GetDeletionTimestamp() != nil {
		t.Fatal("the deletion marker deleted the inventory namespace")
	}
	if inv := e.inventory(); inv != nil {
		t.Errorf("the inventory survived the deletion marker: %s", keyStrings(inv))
	}
}

func TestKubernetesLeavesWhatAnotherStackTookOver(t *testing.T) {
	t.Parallel()
	e := newKubeEnv(t)
	e.mustApply(1, "ns", "cm-a", "cm-b")
	b := e.mustGet(cmGVR, e.ns(), "b")
	b.SetLabels(map[string]string{StackLabel: "someone-else"})
	if _, err := e.dyn.Resource(cmGVR).Namespace(e.ns()).Update(context.Background(), b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.mustApply(2, "ns", "cm-a")
	if _, err := e.get(cmGVR, e.ns(), "b"); err != nil {
		t.Fatalf("ConfigMap b, now labelled for another stack, was pruned: %v", err)
	}
	if got := len(e.inventory()); got != 2 {
		t.Errorf("inventory lists %d objects, want 2 (b is no longer the stack's)", got)
	}
}

func TestKubernetesRejectsBadObjectsWithClearErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		yaml string // after the namespace document; {s} is the suffix
		want string
	}{
		{"no name", "apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: t-{s}}\n",
			"document 2: metadata.name is missing (apiVersion v1, kind ConfigMap)"},
		{"invalid YAML", "kind: [\n", "document 2: invalid YAML"},
		{"unknown kind", "apiVersion: gadgets.example.com/v1\nkind: Gadget\nmetadata: {name: g, namespace: t-{s}}\n",
			"Gadget.gadgets.example.com t-{s}/g: the cluster serves no kind Gadget in gadgets.example.com/v1, and no CustomResourceDefinition in this object defines it"},
		{"version the CRD lacks", docs["crd"] + "---\napiVersion: w-{s}.example.com/v2\nkind: Widget\nmetadata: {name: w, namespace: t-{s}}\n",
			"Widget.w-{s}.example.com t-{s}/w: its CustomResourceDefinition in this object serves Widget in versions [v1], not v2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newKubeEnv(t)
			yaml := strings.ReplaceAll(docs["ns"]+"---\n"+c.yaml, "{s}", e.suffix)
			err := e.k.Apply(context.Background(), Object{StackID: e.stackID, StackName: "bad", SequenceID: 1, YAML: yaml})
			if want := strings.ReplaceAll(c.want, "{s}", e.suffix); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Apply = %v\nwant an error containing %q", err, want)
			}
			// Nothing was applied: the namespace before the bad document
			// does not exist, and there is no inventory.
			if _, err := e.get(nsGVR, "", e.ns()); !apierrors.IsNotFound(err) {
				t.Errorf("namespace %s: %v, want not found", e.ns(), err)
			}
			if inv := e.inventory(); inv != nil {
				t.Errorf("inventory written: %s", keyStrings(inv))
			}
		})
	}
}

func TestKubernetesReportsWhatTheAPIServerRefuses(t *testing.T) {
	t.Parallel()
	e := newKubeEnv(t)
	e.mustApply(1, "ns", "cm-a")
	// A ConfigMap's data values are strings: the API server refuses a number.
	bad := strings.ReplaceAll(docs["ns"]+"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad, namespace: t-{s}}\ndata: {count: 1}\n", "{s}", e.suffix)
	err := e.k.Apply(context.Background(), Object{StackID: e.stackID, StackName: "demo", SequenceID: 2, YAML: bad})
	if err == nil || !strings.Contains(err.Error(), "applying ConfigMap "+e.ns()+"/bad: ") || !strings.Contains(err.Error(), ".data.count") {
		t.Fatalf("Apply = %v, want the API server's refusal naming the object and field", err)
	}
	// The failed object pruned nothing: what the stack had is still there and
	// still in the inventory, for the next object to settle.
	e.mustGet(cmGVR, e.ns(), "a")
	if got := keyStrings(e.inventory()); !strings.Contains(got, "ConfigMap "+e.ns()+"/a") {
		t.Errorf("inventory after the failure lists %s", got)
	}
}

func TestKubernetesHealth(t *testing.T) {
	t.Parallel()
	e := newKubeEnv(t)
	ctx := context.Background()
	check := func(want HealthStatus, wantMsg string) {
		t.Helper()
		h, err := e.k.Health(ctx, e.stackID)
		if err != nil {
			t.Fatal(err)
		}
		if h.Status != want || !strings.Contains(h.Message, wantMsg) {
			t.Fatalf("Health = %+v, want %s with %q", h, want, wantMsg)
		}
	}
	check(Unknown, "nothing applied")
	e.mustApply(1, "ns", "crd", "cr", "cm-a", "cm-b")
	check(Healthy, "")
	if err := e.dyn.Resource(cmGVR).Namespace(e.ns()).Delete(ctx, "b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	check(Failing, "ConfigMap "+e.ns()+"/b is missing")
	var _ HealthChecker = e.k
}
