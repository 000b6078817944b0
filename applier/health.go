package applier

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// maxHealthReasons bounds the reasons a Health message lists.
const maxHealthReasons = 5

// readyConditions are the conditions that say an object works: a False one
// makes it DEGRADED.
var readyConditions = []string{"Ready", "Available", "Established"}

// Health judges what the stack's inventory lists, the worst object winning:
// FAILING when an object is missing, DEGRADED when one is being deleted or
// has a Ready, Available or Established condition that is False, HEALTHY
// otherwise; UNKNOWN when the stack has no inventory (nothing applied). It
// is a first cut for issue 12 (per-object health): objects without such
// conditions count as healthy once they exist.
func (k *Kubernetes) Health(ctx context.Context, stackID string) (Health, error) {
	inv, err := k.readInventory(ctx, stackID)
	if err != nil {
		return Health{}, err
	}
	if !inv.Exists {
		return Health{Status: Unknown, Message: "nothing applied for this stack"}, nil
	}
	worst := Healthy
	var reasons []string
	for _, key := range inv.Objects {
		status, reason, err := k.objectHealth(ctx, key)
		if err != nil {
			return Health{}, err
		}
		if status == Healthy {
			continue
		}
		if rank(status) > rank(worst) {
			worst = status
		}
		if len(reasons) < maxHealthReasons {
			reasons = append(reasons, reason)
		}
	}
	return Health{Status: worst, Message: strings.Join(reasons, "; ")}, nil
}

func rank(s HealthStatus) int {
	switch s {
	case Healthy:
		return 0
	case Degraded:
		return 1
	case Failing:
		return 2
	}
	return 3
}

func (k *Kubernetes) objectHealth(ctx context.Context, key objectKey) (HealthStatus, string, error) {
	m, err := k.mapping(schema.GroupKind{Group: key.Group, Kind: key.Kind}, "")
	if meta.IsNoMatchError(err) {
		return Failing, fmt.Sprintf("%s is missing (its kind is not served)", key), nil
	}
	if err != nil {
		return "", "", fmt.Errorf("checking %s: %w", key, err)
	}
	obj, err := k.resource(m, key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Failing, fmt.Sprintf("%s is missing", key), nil
	}
	if err != nil {
		return "", "", fmt.Errorf("checking %s: %w", key, err)
	}
	if obj.GetDeletionTimestamp() != nil {
		return Degraded, fmt.Sprintf("%s is being deleted", key), nil
	}
	return conditionsHealth(key, obj)
}

func conditionsHealth(key objectKey, obj *unstructured.Unstructured) (HealthStatus, string, error) {
	for _, typ := range readyConditions {
		if status, msg := condition(obj, typ); status == "False" {
			reason := fmt.Sprintf("%s: %s is False", key, typ)
			if msg != "" {
				reason += ": " + msg
			}
			return Degraded, reason, nil
		}
	}
	return Healthy, "", nil
}
