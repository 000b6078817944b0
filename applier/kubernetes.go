package applier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
)

// StackLabel is set on every object the Kubernetes applier applies, to the
// id of the stack it belongs to.
const StackLabel = "brokkr.io/stack"

// KubernetesOptions tune a Kubernetes applier; the zero value is the default.
type KubernetesOptions struct {
	FieldManager       string        // server-side apply field manager ("brokkr")
	InventoryNamespace string        // where the inventories live ("brokkr-system"; created when missing)
	DefaultNamespace   string        // for namespaced objects that name none ("default")
	EstablishTimeout   time.Duration // how long to wait for a CRD to be Established (1 minute)
	Logger             *slog.Logger
}

func (o *KubernetesOptions) defaults() {
	if o.FieldManager == "" {
		o.FieldManager = "brokkr"
	}
	if o.InventoryNamespace == "" {
		o.InventoryNamespace = "brokkr-system"
	}
	if o.DefaultNamespace == "" {
		o.DefaultNamespace = "default"
	}
	if o.EstablishTimeout <= 0 {
		o.EstablishTimeout = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Kubernetes applies each object's documents to a cluster with server-side
// apply (field manager "brokkr", forcing conflicts: the stack is the source
// of truth for the fields it sets, and a field another manager changed is
// taken back on the next apply).
//
// Order: Namespaces first, then CustomResourceDefinitions (waiting until
// each is Established, so that the custom resources after them resolve),
// then everything else in document order. Every object gets the label
// brokkr.io/stack=<stack id>. Namespaced objects that name no namespace go
// to DefaultNamespace; a namespace on a cluster-scoped object is dropped.
//
// Inventory: for each stack the applier keeps a ConfigMap
// brokkr-stack-<stack id> in InventoryNamespace listing the objects the
// stack applied (group, kind, namespace, name). Applying an object first
// records the union of the old and new lists (so a crash never leaves an
// applied object untracked), applies, deletes what the old list had and the
// new lacks (objects first, then CRDs, then namespaces), and records the new
// list. A deletion marker deletes everything listed, then the inventory.
// Nothing is deleted that no longer carries the stack's label (someone took
// it over) or that was replaced by another object of the same name since,
// nor the inventory namespace itself.
//
// Validation happens before anything is sent: the documents must parse and
// each needs apiVersion, kind and metadata.name ([ParseManifests]); every
// kind must be served by the cluster or defined by a CRD in the same object.
type Kubernetes struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
	opts   KubernetesOptions
}

// LoadConfig is the client configuration for the kubernetes applier: from
// the kubeconfig file at path when not empty; otherwise the in-cluster
// configuration (the agent's service account) when running in a pod, else
// $KUBECONFIG or ~/.kube/config as kubectl finds them.
func LoadConfig(path string) (*rest.Config, error) {
	if path != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err == nil {
		return cfg, nil
	}
	if !errors.Is(err, rest.ErrNotInCluster) {
		return nil, fmt.Errorf("in-cluster configuration: %w", err)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("not in a cluster and no usable kubeconfig ($KUBECONFIG or ~/.kube/config): %w", err)
	}
	return cfg, nil
}

// NewKubernetes returns a Kubernetes applier for the cluster cfg reaches.
// It contacts the cluster only when it applies.
func NewKubernetes(cfg *rest.Config, opts KubernetesOptions) (*Kubernetes, error) {
	opts.defaults()
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "brokkr-agent"
	}
	if cfg.QPS == 0 { // client-go's default, 5 per second, makes a large stack crawl
		cfg.QPS, cfg.Burst = 50, 100
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes applier: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes applier: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	return &Kubernetes{dyn: dyn, mapper: mapper, opts: opts}, nil
}

// Apply applies obj's documents and prunes, or removes the stack's objects
// for a deletion marker.
func (k *Kubernetes) Apply(ctx context.Context, obj Object) error {
	if errs := validation.IsValidLabelValue(obj.StackID); obj.StackID == "" || len(errs) > 0 {
		return fmt.Errorf("stack id %q cannot be a label value", obj.StackID)
	}
	if obj.IsDeletionMarker {
		return k.deleteStack(ctx, obj.StackID)
	}
	objs, err := ParseManifests(obj.YAML)
	if err != nil {
		return err
	}
	p, err := k.plan(ctx, objs, obj.StackID)
	if err != nil {
		return err
	}
	prev, err := k.readInventory(ctx, obj.StackID)
	if err != nil {
		return err
	}
	keys := p.keys()
	if err := k.writeInventory(ctx, obj, union(prev.Objects, keys)); err != nil {
		return err
	}
	if err := k.applyPlan(ctx, p); err != nil {
		return err
	}
	if err := k.removeAll(ctx, obj.StackID, difference(prev.Objects, keys)); err != nil {
		return err
	}
	return k.writeInventory(ctx, obj, keys)
}

// deleteStack removes everything the stack's inventory lists, then the
// inventory. A stack without one has nothing to remove.
func (k *Kubernetes) deleteStack(ctx context.Context, stackID string) error {
	inv, err := k.readInventory(ctx, stackID)
	if err != nil || !inv.Exists {
		return err
	}
	if err := k.removeAll(ctx, stackID, inv.Objects); err != nil {
		return err
	}
	return k.deleteInventory(ctx, stackID)
}

// applyOne server-side applies one object.
func (k *Kubernetes) applyOne(ctx context.Context, m *meta.RESTMapping, obj *unstructured.Unstructured) error {
	_, err := k.resource(m, obj.GetNamespace()).Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{
		FieldManager: k.opts.FieldManager,
		Force:        true,
	})
	if err != nil {
		return fmt.Errorf("applying %s: %w", describe(obj), err)
	}
	return nil
}

func (k *Kubernetes) resource(m *meta.RESTMapping, namespace string) dynamic.ResourceInterface {
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return k.dyn.Resource(m.Resource).Namespace(namespace)
	}
	return k.dyn.Resource(m.Resource)
}

// removeAll deletes keys in the reverse of apply order: objects, then CRDs
// (whose custom resources go with them), then namespaces.
func (k *Kubernetes) removeAll(ctx context.Context, stackID string, keys []objectKey) error {
	ordered := sortForApply(keys)
	var errs []error
	for i := len(ordered) - 1; i >= 0; i-- {
		if err := k.remove(ctx, stackID, ordered[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(ordered) > 0 {
		k.mapper.Reset() // kinds may have gone with their CRDs
	}
	return errors.Join(errs...)
}

// remove deletes one object if it is still the stack's. Gone already is
// fine. The inventory namespace is never deleted, even when a stack declared
// it: the other stacks' inventories live there.
func (k *Kubernetes) remove(ctx context.Context, stackID string, key objectKey) error {
	if key == (objectKey{Kind: "Namespace", Name: k.opts.InventoryNamespace}) {
		k.opts.Logger.Warn("applier: leaving the inventory namespace in place", "stack", stackID, "namespace", key.Name)
		return nil
	}
	m, err := k.mapping(schema.GroupKind{Group: key.Group, Kind: key.Kind}, "")
	if meta.IsNoMatchError(err) {
		return nil // its kind is no longer served, so it is gone
	}
	if err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	ri := k.resource(m, key.Namespace)
	cur, err := ri.Get(ctx, key.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	if owner := cur.GetLabels()[StackLabel]; owner != stackID {
		k.opts.Logger.Warn("applier: not deleting an object that is no longer the stack's",
			"object", key.String(), "stack", stackID, "label", owner)
		return nil
	}
	if cur.GetDeletionTimestamp() != nil {
		return nil
	}
	background := metav1.DeletePropagationBackground
	uid := cur.GetUID()
	err = ri.Delete(ctx, key.Name, metav1.DeleteOptions{
		PropagationPolicy: &background,
		Preconditions:     &metav1.Preconditions{UID: &uid}, // not a same-named successor
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	return nil
}

// mapping resolves a kind, refreshing the cached discovery once when the
// kind is unknown (it may be new since the cache was filled).
func (k *Kubernetes) mapping(gk schema.GroupKind, version string) (*meta.RESTMapping, error) {
	var versions []string
	if version != "" {
		versions = []string{version}
	}
	m, err := k.mapper.RESTMapping(gk, versions...)
	if meta.IsNoMatchError(err) {
		k.mapper.Reset()
		m, err = k.mapper.RESTMapping(gk, versions...)
	}
	return m, err
}
