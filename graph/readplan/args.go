package readplan

import (
	"errors"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"

	"github.com/brokkr/brokkr/graph/scalar"
	"github.com/brokkr/brokkr/models"
)

// Arguments are coerced as the generated code coerces them, with the same
// scalar functions (graph/scalar), from gqlparser's ArgumentMap (defaults
// and variables applied). A value those functions refuse (a malformed ID, a
// NUL in a string) is not planned: the executor reports it, in its words.

// errNotPlanned marks an argument the planner leaves to the executor.
var errNotPlanned = errors.New("readplan: not planned")

// args are a relation field's coerced arguments.
type args struct {
	first          *int
	after          *string
	includeDeleted bool
	id             uuid.UUID
	filter         any // *models.<Type>Filter (typed nil when absent)
}

func coerceArgs(m map[string]any, list *listKind) (args, error) {
	var a args
	var err error
	if v, ok := m["first"]; ok && v != nil {
		n, e := scalar.UnmarshalInt(v)
		a.first, err = &n, errors.Join(err, e)
	}
	if v, ok := m["after"]; ok && v != nil {
		s, e := scalar.UnmarshalString(v)
		a.after, err = &s, errors.Join(err, e)
	}
	if v, ok := m["includeDeleted"]; ok && v != nil {
		b, e := graphql.UnmarshalBoolean(v)
		a.includeDeleted, err = b, errors.Join(err, e)
	}
	if v, ok := m["id"]; ok {
		id, e := scalar.UnmarshalUUID(v)
		a.id, err = id, errors.Join(err, e)
	}
	if list != nil {
		f, e := list.decode(m["filter"])
		a.filter, err = f, errors.Join(err, e)
	}
	if err != nil {
		return a, errNotPlanned
	}
	return a, nil
}

// listKind is one kind of list: how its filter is coerced and the
// conditions models gives it.
type listKind struct {
	decode func(v any) (any, error)
	conds  func(s models.Scope, filter any, includeDeleted bool) ([]models.Cond, error)
}

var (
	generatorList = &listKind{decode: generatorFilter, conds: func(s models.Scope, f any, d bool) ([]models.Cond, error) {
		return models.GeneratorListConds(s, f.(*models.GeneratorFilter), d)
	}}
	stackList = &listKind{decode: stackFilter, conds: func(s models.Scope, f any, d bool) ([]models.Cond, error) {
		return models.StackListConds(s, f.(*models.StackFilter), d)
	}}
	objectList = &listKind{decode: objectFilter, conds: func(s models.Scope, f any, d bool) ([]models.Cond, error) {
		return models.DeploymentObjectListConds(s, f.(*models.DeploymentObjectFilter), d)
	}}
	agentList = &listKind{decode: agentFilter, conds: func(s models.Scope, f any, d bool) ([]models.Cond, error) {
		return models.AgentListConds(s, f.(*models.AgentFilter), d)
	}}
	eventList = &listKind{decode: eventFilter, conds: func(s models.Scope, f any, d bool) ([]models.Cond, error) {
		return models.AgentEventListConds(s, f.(*models.AgentEventFilter), d)
	}}
)

// fields reads an input object's fields; ok is false for null.
type fields struct {
	m   map[string]any
	err error
}

func inputOf(v any) (*fields, bool) {
	if v == nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return &fields{err: errNotPlanned}, true
	}
	return &fields{m: m}, true
}

func (f *fields) str(name string) *string {
	v, ok := f.m[name]
	if !ok || v == nil {
		return nil
	}
	s, err := scalar.UnmarshalString(v)
	f.err = errors.Join(f.err, err)
	return &s
}

func (f *fields) id(name string) *uuid.UUID {
	v, ok := f.m[name]
	if !ok || v == nil {
		return nil
	}
	id, err := scalar.UnmarshalUUID(v)
	f.err = errors.Join(f.err, err)
	return &id
}

func (f *fields) boolean(name string) *bool {
	v, ok := f.m[name]
	if !ok || v == nil {
		return nil
	}
	b, err := graphql.UnmarshalBoolean(v)
	f.err = errors.Join(f.err, err)
	return &b
}

func (f *fields) strs(name string) []string {
	v, ok := f.m[name]
	if !ok || v == nil {
		return nil
	}
	vs := graphql.CoerceList(v)
	out := make([]string, len(vs))
	for i, e := range vs {
		s, err := scalar.UnmarshalString(e)
		f.err = errors.Join(f.err, err)
		out[i] = s
	}
	return out
}

func (f *fields) annotations(name string) []*models.AnnotationInput {
	v, ok := f.m[name]
	if !ok || v == nil {
		return nil
	}
	vs := graphql.CoerceList(v)
	out := make([]*models.AnnotationInput, len(vs))
	for i, e := range vs {
		in, ok := inputOf(e)
		if !ok || in.err != nil {
			f.err = errNotPlanned
			continue
		}
		k, val := in.str("key"), in.str("value")
		if k == nil || val == nil || in.err != nil {
			f.err = errNotPlanned
			continue
		}
		out[i] = &models.AnnotationInput{Key: *k, Value: *val}
	}
	return out
}

func generatorFilter(v any) (any, error) {
	in, ok := inputOf(v)
	if !ok {
		return (*models.GeneratorFilter)(nil), nil
	}
	f := &models.GeneratorFilter{Name: in.str("name"), IsActive: in.boolean("isActive")}
	return f, in.err
}

func stackFilter(v any) (any, error) {
	in, ok := inputOf(v)
	if !ok {
		return (*models.StackFilter)(nil), nil
	}
	f := &models.StackFilter{Name: in.str("name"), GeneratorID: in.id("generatorId"),
		Labels: in.strs("labels"), Annotations: in.annotations("annotations")}
	return f, in.err
}

func objectFilter(v any) (any, error) {
	in, ok := inputOf(v)
	if !ok {
		return (*models.DeploymentObjectFilter)(nil), nil
	}
	f := &models.DeploymentObjectFilter{StackID: in.id("stackId"), IsDeletionMarker: in.boolean("isDeletionMarker")}
	return f, in.err
}

func agentFilter(v any) (any, error) {
	in, ok := inputOf(v)
	if !ok {
		return (*models.AgentFilter)(nil), nil
	}
	f := &models.AgentFilter{Name: in.str("name"), ClusterName: in.str("clusterName"),
		Labels: in.strs("labels"), Annotations: in.annotations("annotations")}
	if s := in.str("status"); s != nil {
		st := models.AgentStatus(*s)
		f.Status = &st
	}
	return f, in.err
}

func eventFilter(v any) (any, error) {
	in, ok := inputOf(v)
	if !ok {
		return (*models.AgentEventFilter)(nil), nil
	}
	f := &models.AgentEventFilter{AgentID: in.id("agentId"), DeploymentObjectID: in.id("deploymentObjectId"),
		StackID: in.id("stackId"), EventType: in.str("eventType"), Status: in.str("status")}
	return f, in.err
}
