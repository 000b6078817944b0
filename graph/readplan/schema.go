package readplan

import (
	"time"

	"github.com/google/uuid"

	"github.com/brokkr/brokkr/models"
)

// The schema as the planner knows it: for each object type read from a
// table, its columns (each a GraphQL scalar field, or a key the planner
// needs) and its relation fields. A field missing here is one the planner
// does not understand: the operation goes to the executor.

// objType is a GraphQL object type whose objects are rows of one table,
// held in the models struct of that table.
type objType struct {
	name  string
	table models.Table
	// cols are the columns the planner may read, by SQL name; fields maps
	// GraphQL scalar fields to them.
	cols   []*column
	fields map[string]*column
	rels   map[string]*relSpec
	// rowsOf returns a function that makes rows, a chunk at a time (one
	// allocation for many rows of one statement).
	rowsOf func() func() any
	id     func(any) uuid.UUID
	// key is the sort key of a row: what its cursor encodes.
	key func(any) (at time.Time, id uuid.UUID, seq int64)
}

// column is one column of a table: how to scan it into a row and how to
// write it as a GraphQL value.
type column struct {
	name  string
	bit   colset
	dest  func(any) any
	write func(*jsonw, any)
}

// colset is a set of an objType's columns, by their index.
type colset uint32

func (t *objType) col(name string) *column {
	for _, c := range t.cols {
		if c.name == name {
			return c
		}
	}
	panic("readplan: no column " + name + " in " + t.name)
}

// mkCol declares a column of rows of type *T whose value is a V.
func mkCol[T, V any](name string, get func(*T) *V, write func(*jsonw, V)) *column {
	return &column{
		name:  name,
		dest:  func(o any) any { return scanDest(get(o.(*T))) },
		write: func(w *jsonw, o any) { write(w, *get(o.(*T))) },
	}
}

// scanDest is where pgx scans a value: a UUID as its 16 bytes, which pgx
// decodes from the binary result directly (uuid.UUID's sql.Scanner would
// take it through text).
func scanDest(p any) any {
	if u, ok := p.(*uuid.UUID); ok {
		return (*[16]byte)(u)
	}
	return p
}

// mkType finishes an objType: numbers its columns and maps fields (GraphQL
// name → SQL column name) to them.
func mkType[T any](name string, table models.Table, cols []*column, fields map[string]string,
	id func(*T) uuid.UUID, key func(*T) (time.Time, uuid.UUID, int64)) *objType {
	t := &objType{name: name, table: table, cols: cols, fields: map[string]*column{}, rels: map[string]*relSpec{},
		rowsOf: func() func() any {
			var chunk []T
			n := 2
			return func() any {
				if len(chunk) == 0 {
					n = min(2*n, maxRowChunk)
					chunk = make([]T, n)
				}
				o := &chunk[0]
				chunk = chunk[1:]
				return o
			}
		},
		id:  func(o any) uuid.UUID { return id(o.(*T)) },
		key: func(o any) (time.Time, uuid.UUID, int64) { return key(o.(*T)) },
	}
	for i, c := range cols {
		c.bit = 1 << i
	}
	for f, c := range fields {
		t.fields[f] = t.col(c)
	}
	return t
}

// maxRowChunk is the most rows allocated at once (chunks double up to it).
const maxRowChunk = 64

func createdKey(at time.Time, id uuid.UUID) (time.Time, uuid.UUID, int64) { return at, id, 0 }

var (
	generatorType = mkType("Generator", models.Generators, []*column{
		mkCol("id", func(g *models.Generator) *uuid.UUID { return &g.ID }, (*jsonw).id),
		mkCol("name", func(g *models.Generator) *string { return &g.Name }, (*jsonw).str),
		mkCol("description", func(g *models.Generator) **string { return &g.Description }, (*jsonw).optStr),
		mkCol("is_active", func(g *models.Generator) *bool { return &g.IsActive }, (*jsonw).boolean),
		mkCol("last_active_at", func(g *models.Generator) **time.Time { return &g.LastActiveAt }, (*jsonw).optTime),
		mkCol("rate_limit_per_minute", func(g *models.Generator) **int32 { return &g.RateLimitPerMinute }, (*jsonw).optInt32),
		mkCol("created_at", func(g *models.Generator) *time.Time { return &g.CreatedAt }, (*jsonw).time),
		mkCol("updated_at", func(g *models.Generator) *time.Time { return &g.UpdatedAt }, (*jsonw).time),
		mkCol("deleted_at", func(g *models.Generator) **time.Time { return &g.DeletedAt }, (*jsonw).optTime),
	}, map[string]string{"id": "id", "name": "name", "description": "description", "isActive": "is_active",
		"lastActiveAt": "last_active_at", "rateLimitPerMinute": "rate_limit_per_minute", "createdAt": "created_at",
		"updatedAt": "updated_at", "deletedAt": "deleted_at"},
		func(g *models.Generator) uuid.UUID { return g.ID },
		func(g *models.Generator) (time.Time, uuid.UUID, int64) { return createdKey(g.CreatedAt, g.ID) })

	stackType = mkType("Stack", models.Stacks, []*column{
		mkCol("id", func(s *models.Stack) *uuid.UUID { return &s.ID }, (*jsonw).id),
		mkCol("name", func(s *models.Stack) *string { return &s.Name }, (*jsonw).str),
		mkCol("description", func(s *models.Stack) **string { return &s.Description }, (*jsonw).optStr),
		mkCol("generator_id", func(s *models.Stack) *uuid.UUID { return &s.GeneratorID }, (*jsonw).id),
		mkCol("created_at", func(s *models.Stack) *time.Time { return &s.CreatedAt }, (*jsonw).time),
		mkCol("updated_at", func(s *models.Stack) *time.Time { return &s.UpdatedAt }, (*jsonw).time),
		mkCol("deleted_at", func(s *models.Stack) **time.Time { return &s.DeletedAt }, (*jsonw).optTime),
	}, map[string]string{"id": "id", "name": "name", "description": "description", "createdAt": "created_at",
		"updatedAt": "updated_at", "deletedAt": "deleted_at"},
		func(s *models.Stack) uuid.UUID { return s.ID },
		func(s *models.Stack) (time.Time, uuid.UUID, int64) { return createdKey(s.CreatedAt, s.ID) })

	objectType = mkType("DeploymentObject", models.DeploymentObjects, []*column{
		mkCol("id", func(d *models.DeploymentObject) *uuid.UUID { return &d.ID }, (*jsonw).id),
		mkCol("sequence_id", func(d *models.DeploymentObject) *int64 { return &d.SequenceID }, (*jsonw).int64),
		mkCol("stack_id", func(d *models.DeploymentObject) *uuid.UUID { return &d.StackID }, (*jsonw).id),
		mkCol("yaml_content", func(d *models.DeploymentObject) *string { return &d.YamlContent }, (*jsonw).str),
		mkCol("yaml_checksum", func(d *models.DeploymentObject) *string { return &d.YamlChecksum }, (*jsonw).str),
		mkCol("is_deletion_marker", func(d *models.DeploymentObject) *bool { return &d.IsDeletionMarker }, (*jsonw).boolean),
		mkCol("submitted_at", func(d *models.DeploymentObject) *time.Time { return &d.SubmittedAt }, (*jsonw).time),
		mkCol("created_at", func(d *models.DeploymentObject) *time.Time { return &d.CreatedAt }, (*jsonw).time),
		mkCol("deleted_at", func(d *models.DeploymentObject) **time.Time { return &d.DeletedAt }, (*jsonw).optTime),
	}, map[string]string{"id": "id", "sequenceId": "sequence_id", "yamlContent": "yaml_content",
		"yamlChecksum": "yaml_checksum", "isDeletionMarker": "is_deletion_marker", "submittedAt": "submitted_at",
		"createdAt": "created_at", "deletedAt": "deleted_at"},
		func(d *models.DeploymentObject) uuid.UUID { return d.ID },
		func(d *models.DeploymentObject) (time.Time, uuid.UUID, int64) { return time.Time{}, d.ID, d.SequenceID })

	agentType = mkType("Agent", models.Agents, []*column{
		mkCol("id", func(a *models.Agent) *uuid.UUID { return &a.ID }, (*jsonw).id),
		mkCol("name", func(a *models.Agent) *string { return &a.Name }, (*jsonw).str),
		mkCol("cluster_name", func(a *models.Agent) *string { return &a.ClusterName }, (*jsonw).str),
		mkCol("status", func(a *models.Agent) *models.AgentStatus { return &a.Status }, (*jsonw).status),
		mkCol("last_heartbeat", func(a *models.Agent) **time.Time { return &a.LastHeartbeat }, (*jsonw).optTime),
		mkCol("created_at", func(a *models.Agent) *time.Time { return &a.CreatedAt }, (*jsonw).time),
		mkCol("updated_at", func(a *models.Agent) *time.Time { return &a.UpdatedAt }, (*jsonw).time),
		mkCol("deleted_at", func(a *models.Agent) **time.Time { return &a.DeletedAt }, (*jsonw).optTime),
	}, map[string]string{"id": "id", "name": "name", "clusterName": "cluster_name", "status": "status",
		"lastHeartbeat": "last_heartbeat", "createdAt": "created_at", "updatedAt": "updated_at", "deletedAt": "deleted_at"},
		func(a *models.Agent) uuid.UUID { return a.ID },
		func(a *models.Agent) (time.Time, uuid.UUID, int64) { return createdKey(a.CreatedAt, a.ID) })

	eventType = mkType("AgentEvent", models.AgentEvents, []*column{
		mkCol("id", func(e *models.AgentEvent) *uuid.UUID { return &e.ID }, (*jsonw).id),
		mkCol("agent_id", func(e *models.AgentEvent) *uuid.UUID { return &e.AgentID }, (*jsonw).id),
		mkCol("deployment_object_id", func(e *models.AgentEvent) *uuid.UUID { return &e.DeploymentObjectID }, (*jsonw).id),
		mkCol("event_type", func(e *models.AgentEvent) *string { return &e.EventType }, (*jsonw).str),
		mkCol("status", func(e *models.AgentEvent) *string { return &e.Status }, (*jsonw).str),
		mkCol("message", func(e *models.AgentEvent) **string { return &e.Message }, (*jsonw).optStr),
		mkCol("created_at", func(e *models.AgentEvent) *time.Time { return &e.CreatedAt }, (*jsonw).time),
		mkCol("deleted_at", func(e *models.AgentEvent) **time.Time { return &e.DeletedAt }, (*jsonw).optTime),
	}, map[string]string{"id": "id", "eventType": "event_type", "status": "status", "message": "message",
		"createdAt": "created_at", "deletedAt": "deleted_at"},
		func(e *models.AgentEvent) uuid.UUID { return e.ID },
		func(e *models.AgentEvent) (time.Time, uuid.UUID, int64) { return createdKey(e.CreatedAt, e.ID) })

	targetType = mkType("AgentTarget", models.AgentTargets, []*column{
		mkCol("id", func(t *models.AgentTarget) *uuid.UUID { return &t.ID }, (*jsonw).id),
		mkCol("agent_id", func(t *models.AgentTarget) *uuid.UUID { return &t.AgentID }, (*jsonw).id),
		mkCol("stack_id", func(t *models.AgentTarget) *uuid.UUID { return &t.StackID }, (*jsonw).id),
		mkCol("created_at", func(t *models.AgentTarget) *time.Time { return &t.CreatedAt }, (*jsonw).time),
	}, map[string]string{"id": "id", "createdAt": "created_at"},
		func(t *models.AgentTarget) uuid.UUID { return t.ID },
		func(t *models.AgentTarget) (time.Time, uuid.UUID, int64) { return createdKey(t.CreatedAt, t.ID) })
)

// The object types that hold no table rows.
const (
	queryName      = "Query"
	viewerName     = "Viewer"
	pageInfoName   = "PageInfo"
	annotationName = "Annotation"
)

// fk reads a foreign key column of a row.
func fk[T any](get func(*T) uuid.UUID) func(any) uuid.UUID {
	return func(o any) uuid.UUID { return get(o.(*T)) }
}

func init() {
	generatorType.rels = map[string]*relSpec{
		"stacks": pageOf(stackType, "generator_id", stackList),
	}
	stackType.rels = map[string]*relSpec{
		"generator":              entityOf(generatorType, "generator_id", fk(func(s *models.Stack) uuid.UUID { return s.GeneratorID }), "generator"),
		"labels":                 {kind: kindLabels, table: "stack_labels", alias: "sl", parentCol: "stack_id", visible: models.VisibleStackIDs},
		"annotations":            {kind: kindAnnotations, table: "stack_annotations", alias: "sa", parentCol: "stack_id", visible: models.VisibleStackIDs},
		"deploymentObjects":      pageOf(objectType, "stack_id", objectList),
		"latestDeploymentObject": {kind: kindLatest, target: objectType, parentCol: "stack_id"},
		"targets":                {kind: kindTargets, target: targetType, parentCol: "stack_id"},
		"agents":                 {kind: kindMapped, target: agentType, parentCol: "stack_id", via: "agent_id", what: "agent"},
	}
	objectType.rels = map[string]*relSpec{
		"stack":  entityOf(stackType, "stack_id", fk(func(d *models.DeploymentObject) uuid.UUID { return d.StackID }), "stack"),
		"events": pageOf(eventType, "deployment_object_id", eventList),
	}
	agentType.rels = map[string]*relSpec{
		"labels":       {kind: kindLabels, table: "agent_labels", alias: "al", parentCol: "agent_id", visible: models.VisibleAgentIDs},
		"annotations":  {kind: kindAnnotations, table: "agent_annotations", alias: "aa", parentCol: "agent_id", visible: models.VisibleAgentIDs},
		"targets":      {kind: kindTargets, target: targetType, parentCol: "agent_id"},
		"stacks":       {kind: kindMapped, target: stackType, parentCol: "agent_id", via: "stack_id", what: "stack"},
		"desiredState": {kind: kindDesired, target: objectType},
		"events":       pageOf(eventType, "agent_id", eventList),
	}
	eventType.rels = map[string]*relSpec{
		"agent":            entityOf(agentType, "agent_id", fk(func(e *models.AgentEvent) uuid.UUID { return e.AgentID }), "agent"),
		"deploymentObject": entityOf(objectType, "deployment_object_id", fk(func(e *models.AgentEvent) uuid.UUID { return e.DeploymentObjectID }), "deployment object"),
	}
	targetType.rels = map[string]*relSpec{
		"agent": entityOf(agentType, "agent_id", fk(func(t *models.AgentTarget) uuid.UUID { return t.AgentID }), "agent"),
		"stack": entityOf(stackType, "stack_id", fk(func(t *models.AgentTarget) uuid.UUID { return t.StackID }), "stack"),
	}
}

// rootRels are the Query fields the planner serves.
var rootRels = map[string]*relSpec{
	"viewer":            {kind: kindViewer},
	"generator":         getOf(generatorType, "generator"),
	"generators":        listOf(generatorType, generatorList),
	"stack":             getOf(stackType, "stack"),
	"stacks":            listOf(stackType, stackList),
	"deploymentObject":  getOf(objectType, "deployment object"),
	"deploymentObjects": listOf(objectType, objectList),
	"agent":             getOf(agentType, "agent"),
	"agents":            listOf(agentType, agentList),
	"agentEvents":       listOf(eventType, eventList),
}

// viewerRels are the Viewer's fields that hold objects.
var viewerRels = map[string]*relSpec{
	"generator": {kind: kindViewerEntity, target: generatorType, what: "generator"},
	"agent":     {kind: kindViewerEntity, target: agentType, what: "agent"},
}

// orders are the page orders of the paged types.
var orders = map[*objType]models.PageOrder{
	generatorType: models.ByCreated, stackType: models.ByCreated, agentType: models.ByCreated,
	objectType: models.BySequence, eventType: models.ByCreatedDesc,
}

// orderCols are the columns a page's order (and its cursors) read.
var orderCols = map[*objType][]string{
	generatorType: {"created_at"}, stackType: {"created_at"}, agentType: {"created_at"},
	objectType: {"sequence_id"}, eventType: {"created_at"},
}
