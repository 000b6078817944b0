package models

import (
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/schema"
)

// These types back GraphQL inputs and small value types; gqlgen autobinds to
// them by name (gqlgen.yml autobind: models).

// Annotation is a key = value pair as the API shows it.
type Annotation struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// AnnotationInput is an annotation in a filter or mutation input.
type AnnotationInput struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// GeneratorFilter narrows generator lists.
type GeneratorFilter struct {
	Name     *string `json:"name,omitempty"`
	IsActive *bool   `json:"isActive,omitempty"`
}

// StackFilter narrows stack lists. Labels and Annotations match when the
// stack has all of them.
type StackFilter struct {
	Name        *string            `json:"name,omitempty"`
	GeneratorID *uuid.UUID         `json:"generatorId,omitempty"`
	Labels      []string           `json:"labels,omitempty"`
	Annotations []*AnnotationInput `json:"annotations,omitempty"`
}

// AgentFilter narrows agent lists. Labels and Annotations match when the
// agent has all of them.
type AgentFilter struct {
	Name        *string            `json:"name,omitempty"`
	ClusterName *string            `json:"clusterName,omitempty"`
	Status      *AgentStatus       `json:"status,omitempty"`
	Labels      []string           `json:"labels,omitempty"`
	Annotations []*AnnotationInput `json:"annotations,omitempty"`
}

// DeploymentObjectFilter narrows deployment-object lists.
type DeploymentObjectFilter struct {
	StackID          *uuid.UUID `json:"stackId,omitempty"`
	IsDeletionMarker *bool      `json:"isDeletionMarker,omitempty"`
}

// AgentEventFilter narrows agent-event lists and the agentEvents subscription.
type AgentEventFilter struct {
	AgentID            *uuid.UUID `json:"agentId,omitempty"`
	DeploymentObjectID *uuid.UUID `json:"deploymentObjectId,omitempty"`
	StackID            *uuid.UUID `json:"stackId,omitempty"`
	EventType          *string    `json:"eventType,omitempty"`
	Status             *string    `json:"status,omitempty"`
}

// TargetChangeAction says whether a target was added or removed.
type TargetChangeAction string

const (
	TargetAdded   TargetChangeAction = "ADDED"
	TargetRemoved TargetChangeAction = "REMOVED"
)

// AgentTargetChange is one payload of the agentTargetChanges subscription.
type AgentTargetChange struct {
	Action  TargetChangeAction `json:"action"`
	AgentID uuid.UUID          `json:"agentId"`
	StackID uuid.UUID          `json:"stackId"`
	At      time.Time          `json:"at"`
}

// checkFilterLists caps the lists of a label/annotation filter.
func checkFilterLists(labels []string, annotations []*AnnotationInput) error {
	if len(labels) > MaxLabels {
		return Invalid("labels", "a filter takes at most %d labels", MaxLabels)
	}
	if len(annotations) > MaxAnnotations {
		return Invalid("annotations", "a filter takes at most %d annotations", MaxAnnotations)
	}
	return nil
}

// hasAllLabels is the condition "the parent alias.id has every one of
// labels", over a label table (stack_labels or agent_labels) whose parent
// column is parentCol. It is one statement-wide subquery, not a test per
// label: the rows of any of the labels, found through the label index,
// grouped by parent, keeping the parents that have them all. The label
// tables hold a label once per parent (their unique constraints), so
// count(*) counts distinct labels.
func hasAllLabels(alias, table, parentCol string, labels []string) cond {
	want := distinct(labels)
	if len(want) == 0 {
		return condTrue
	}
	return cond{
		sql: alias + ".id IN (SELECT f_l." + parentCol + " FROM " + table + " AS f_l WHERE f_l.label = ANY(?)" +
			" GROUP BY f_l." + parentCol + " HAVING count(*) = ?)",
		args: []any{TextArray(want), len(want)},
	}
}

// hasAllAnnotations is hasAllLabels for key = value pairs over an
// annotation table. A parent has one value per key, so a filter naming two
// values of one key matches nothing.
func hasAllAnnotations(alias, table, parentCol string, annotations []*AnnotationInput) cond {
	values := map[string]string{}
	var pairs [][2]string
	for _, a := range annotations {
		if a == nil {
			continue
		}
		if v, ok := values[a.Key]; ok {
			if v != a.Value {
				return condFalse
			}
			continue
		}
		values[a.Key] = a.Value
		pairs = append(pairs, [2]string{a.Key, a.Value})
	}
	if len(pairs) == 0 {
		return condTrue
	}
	list := make([]string, len(pairs))
	args := make([]any, 0, 2*len(pairs)+1)
	for i, p := range pairs {
		list[i] = "(?, ?)"
		args = append(args, p[0], p[1])
	}
	args = append(args, len(pairs))
	return cond{
		sql: alias + ".id IN (SELECT f_a." + parentCol + " FROM " + table + " AS f_a WHERE (f_a.key, f_a.value) IN (" +
			strings.Join(list, ", ") + ") GROUP BY f_a." + parentCol + " HAVING count(*) = ?)",
		args: args,
	}
}

// TextArray is a list of texts passed as one argument (a PostgreSQL
// text[], for "= ANY(?)"): bun writes it as an array literal; the read
// planner sends it as one parameter, so a statement's text does not vary
// with the list's length.
type TextArray []string

// AppendQuery writes the array literal (bun).
func (a TextArray) AppendQuery(gen schema.QueryGen, b []byte) ([]byte, error) {
	return pgdialect.Array([]string(a)).AppendQuery(gen, b)
}

// distinct returns vs without repeats, in first-seen order.
func distinct(vs []string) []string {
	seen := make(map[string]bool, len(vs))
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
