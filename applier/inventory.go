package applier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
)

// InventoryLabel marks the inventory ConfigMaps, with the stack id as value.
const InventoryLabel = "brokkr.io/inventory"

var (
	configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	namespaces = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
)

// inventory is what a stack's inventory ConfigMap says.
type inventory struct {
	Exists  bool
	Objects []objectKey // in the order they were applied
}

// InventoryName is the name of the stack's inventory ConfigMap:
// brokkr-stack-<stack id> when that is a valid name (stack ids are UUIDs),
// else brokkr-stack-<the first 20 hex digits of the id's SHA-256>.
func InventoryName(stackID string) string {
	name := "brokkr-stack-" + stackID
	if len(validation.IsDNS1123Subdomain(name)) == 0 {
		return name
	}
	sum := sha256.Sum256([]byte(stackID))
	return "brokkr-stack-" + hex.EncodeToString(sum[:10])
}

func (k *Kubernetes) inventories() dynamic.ResourceInterface {
	return k.dyn.Resource(configMaps).Namespace(k.opts.InventoryNamespace)
}

func (k *Kubernetes) readInventory(ctx context.Context, stackID string) (inventory, error) {
	cm, err := k.inventories().Get(ctx, InventoryName(stackID), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return inventory{}, nil
	}
	if err != nil {
		return inventory{}, fmt.Errorf("reading the stack's inventory: %w", err)
	}
	raw, _, _ := unstructured.NestedString(cm.Object, "data", "objects")
	inv := inventory{Exists: true}
	if err := json.Unmarshal([]byte(raw), &inv.Objects); err != nil {
		return inventory{}, fmt.Errorf("the stack's inventory %s/%s is corrupt (%v): delete it and the stack's objects (label %s=%s) by hand",
			k.opts.InventoryNamespace, cm.GetName(), err, StackLabel, stackID)
	}
	return inv, nil
}

// writeInventory records keys as the stack's objects, creating the
// inventory namespace if it is missing.
func (k *Kubernetes) writeInventory(ctx context.Context, obj Object, keys []objectKey) error {
	ns := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{
			"name":   k.opts.InventoryNamespace,
			"labels": map[string]any{"app.kubernetes.io/managed-by": "brokkr"},
		},
	}}
	// A field manager of its own: under the stack's, applying the namespace
	// here would drop the fields a stack that declares it applied.
	opts := metav1.ApplyOptions{FieldManager: k.opts.FieldManager + "-inventory", Force: true}
	if _, err := k.dyn.Resource(namespaces).Apply(ctx, ns.GetName(), ns, opts); err != nil {
		return fmt.Errorf("creating the inventory namespace %s: %w", ns.GetName(), err)
	}
	if keys == nil {
		keys = []objectKey{}
	}
	list, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	name := InventoryName(obj.StackID)
	cm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{
			"name":      name,
			"namespace": k.opts.InventoryNamespace,
			"labels":    map[string]any{InventoryLabel: obj.StackID},
		},
		"data": map[string]any{
			"stackId":    obj.StackID,
			"stackName":  obj.StackName,
			"sequenceId": strconv.FormatInt(obj.SequenceID, 10),
			"objects":    string(list),
		},
	}}
	if _, err := k.inventories().Apply(ctx, name, cm, opts); err != nil {
		return fmt.Errorf("writing the stack's inventory: %w", err)
	}
	return nil
}

func (k *Kubernetes) deleteInventory(ctx context.Context, stackID string) error {
	err := k.inventories().Delete(ctx, InventoryName(stackID), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting the stack's inventory: %w", err)
	}
	return nil
}

// union is a followed by what of b is not in a.
func union(a, b []objectKey) []objectKey {
	return append(slices.Clone(a), difference(b, a)...)
}

// difference is what of a is not in b.
func difference(a, b []objectKey) []objectKey {
	inB := make(map[objectKey]bool, len(b))
	for _, key := range b {
		inB[key] = true
	}
	var out []objectKey
	for _, key := range a {
		if !inB[key] {
			out = append(out, key)
		}
	}
	return out
}

// sortForApply orders keys as they are applied: namespaces, CRDs, the rest.
func sortForApply(keys []objectKey) []objectKey {
	out := slices.Clone(keys)
	slices.SortStableFunc(out, func(a, b objectKey) int { return phaseOf(a.Group, a.Kind) - phaseOf(b.Group, b.Kind) })
	return out
}
