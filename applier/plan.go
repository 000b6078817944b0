package applier

import (
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Apply phases: namespaces, then CRDs, then everything else.
const (
	phaseNamespace = iota
	phaseCRD
	phaseOther
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func phaseOf(group, kind string) int {
	switch {
	case group == "" && kind == "Namespace":
		return phaseNamespace
	case group == crdResource.Group && kind == "CustomResourceDefinition":
		return phaseCRD
	}
	return phaseOther
}

// planned is one object to apply. mapping is nil for a kind that a CRD of
// the same object defines: it resolves once that CRD is Established.
type planned struct {
	obj     *unstructured.Unstructured
	mapping *meta.RESTMapping
	phase   int
}

type plan []planned

func (p plan) keys() []objectKey {
	keys := make([]objectKey, len(p))
	for i, it := range p {
		keys[i] = keyOf(it.obj)
	}
	return keys
}

// plan labels and resolves the objects, settles their namespaces and puts
// them in apply order. It fails, before anything is applied, on a kind that
// the cluster does not serve and no CRD among objs defines.
func (k *Kubernetes) plan(ctx context.Context, objs []*unstructured.Unstructured, stackID string) (plan, error) {
	defined := definedKinds(objs)
	p := make(plan, 0, len(objs))
	seen := map[objectKey]bool{}
	for _, obj := range objs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		gvk := obj.GroupVersionKind()
		it := planned{obj: obj, phase: phaseOf(gvk.Group, gvk.Kind)}
		m, err := k.mapping(gvk.GroupKind(), gvk.Version)
		def, known := defined[gvk.GroupKind()]
		namespaced := def.namespaced
		switch {
		case err == nil:
			it.mapping = m
			namespaced = m.Scope.Name() == meta.RESTScopeNameNamespace
		case meta.IsNoMatchError(err) && known && !slices.Contains(def.versions, gvk.Version):
			return nil, fmt.Errorf("%s: its CustomResourceDefinition in this object serves %s in versions %v, not %s",
				describe(obj), gvk.Kind, def.versions, gvk.Version)
		case meta.IsNoMatchError(err) && known:
		case meta.IsNoMatchError(err):
			return nil, fmt.Errorf("%s: the cluster serves no kind %s in %s, and no CustomResourceDefinition in this object defines it",
				describe(obj), gvk.Kind, gvk.GroupVersion())
		default:
			return nil, fmt.Errorf("%s: looking up its kind: %w", describe(obj), err)
		}
		switch {
		case namespaced && obj.GetNamespace() == "":
			obj.SetNamespace(k.opts.DefaultNamespace)
		case !namespaced:
			obj.SetNamespace("")
		}
		if seen[keyOf(obj)] {
			return nil, fmt.Errorf("%s appears twice", describe(obj))
		}
		seen[keyOf(obj)] = true
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[StackLabel] = stackID
		obj.SetLabels(labels)
		p = append(p, it)
	}
	slices.SortStableFunc(p, func(a, b planned) int { return a.phase - b.phase })
	return p, nil
}

// crdKind is what a CRD says of the kind it defines.
type crdKind struct {
	namespaced bool
	versions   []string // served versions
}

// definedKinds maps the kinds that the CRDs among objs define to what they
// say of them.
func definedKinds(objs []*unstructured.Unstructured) map[schema.GroupKind]crdKind {
	kinds := map[schema.GroupKind]crdKind{}
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		if phaseOf(gvk.Group, gvk.Kind) != phaseCRD {
			continue
		}
		group, _, _ := unstructured.NestedString(obj.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(obj.Object, "spec", "names", "kind")
		scope, _, _ := unstructured.NestedString(obj.Object, "spec", "scope")
		if kind == "" {
			continue
		}
		def := crdKind{namespaced: scope != "Cluster"}
		versions, _, _ := unstructured.NestedSlice(obj.Object, "spec", "versions")
		for _, v := range versions {
			m, _ := v.(map[string]any)
			if name, _ := m["name"].(string); name != "" && m["served"] == true {
				def.versions = append(def.versions, name)
			}
		}
		kinds[schema.GroupKind{Group: group, Kind: kind}] = def
	}
	return kinds
}

// applyPlan applies in order, waiting after the CRDs until they are
// Established before the objects that follow.
func (k *Kubernetes) applyPlan(ctx context.Context, p plan) error {
	var crds []string
	for _, it := range p {
		if it.phase == phaseOther && crds != nil {
			if err := k.waitEstablished(ctx, crds); err != nil {
				return err
			}
			crds = nil
		}
		m := it.mapping
		if m == nil {
			var err error
			if m, err = k.waitMapping(ctx, it.obj); err != nil {
				return err
			}
		}
		if err := k.applyOne(ctx, m, it.obj); err != nil {
			return err
		}
		if it.phase == phaseCRD {
			crds = append(crds, it.obj.GetName())
		}
	}
	if crds != nil {
		return k.waitEstablished(ctx, crds)
	}
	return nil
}

// waitEstablished waits until every CRD named is Established (or says it
// cannot be: its names are not accepted), then refreshes the cached
// discovery so that their kinds resolve.
func (k *Kubernetes) waitEstablished(ctx context.Context, names []string) error {
	ctx, cancel := context.WithTimeout(ctx, k.opts.EstablishTimeout)
	defer cancel()
	for _, name := range names {
		for {
			crd, err := k.dyn.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
			if err == nil {
				if established(crd) {
					break
				}
				if msg, rejected := namesRejected(crd); rejected {
					return fmt.Errorf("CustomResourceDefinition %s: names not accepted: %s", name, msg)
				}
			}
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return fmt.Errorf("CustomResourceDefinition %s not Established after %s (%v)", name, k.opts.EstablishTimeout, err)
			}
		}
	}
	k.mapper.Reset()
	return nil
}

func established(crd *unstructured.Unstructured) bool {
	status, _ := condition(crd, "Established")
	return status == "True"
}

func namesRejected(crd *unstructured.Unstructured) (string, bool) {
	status, msg := condition(crd, "NamesAccepted")
	return msg, status == "False"
}

// condition is the status and message of the object's condition typ.
func condition(obj *unstructured.Unstructured, typ string) (status, message string) {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != typ {
			continue
		}
		status, _ = m["status"].(string)
		message, _ = m["message"].(string)
		return status, message
	}
	return "", ""
}

// waitMapping resolves a kind whose CRD was just Established: discovery may
// take a moment longer to serve it.
func (k *Kubernetes) waitMapping(ctx context.Context, obj *unstructured.Unstructured) (*meta.RESTMapping, error) {
	ctx, cancel := context.WithTimeout(ctx, k.opts.EstablishTimeout)
	defer cancel()
	gvk := obj.GroupVersionKind()
	for {
		m, err := k.mapping(gvk.GroupKind(), gvk.Version)
		if err == nil {
			return m, nil
		}
		if !meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("%s: looking up its kind: %w", describe(obj), err)
		}
		if serr := sleep(ctx, 250*time.Millisecond); serr != nil {
			return nil, fmt.Errorf("%s: %v after its CustomResourceDefinition was Established (%v)", describe(obj), err, serr)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
