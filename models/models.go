// Package models holds Brokkr's bun row structs, the domain functions that
// read and write them, validation, and the error vocabulary the API maps to
// GraphQL error codes.
//
// The database enforces the data-model rules (cascades, deletion markers,
// immutability, ordering); functions here translate its answers into typed
// errors (see Translate).
package models

import (
	"time"

	"github.com/google/uuid"
	"github.com/uptrace/bun"
)

// AgentStatus is ACTIVE or INACTIVE (agents_status_check).
type AgentStatus string

const (
	AgentStatusActive   AgentStatus = "ACTIVE"
	AgentStatusInactive AgentStatus = "INACTIVE"
)

// Generator is an external system (CI, tenant) that owns stacks.
type Generator struct {
	bun.BaseModel `bun:"table:generators,alias:g"`

	ID                 uuid.UUID  `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	Name               string     `bun:"name,notnull"`
	Description        *string    `bun:"description"`
	PakHash            *string    `bun:"pak_hash" json:"-"`
	IsActive           bool       `bun:"is_active,notnull,default:true"`
	LastActiveAt       *time.Time `bun:"last_active_at"`
	RateLimitPerMinute *int32     `bun:"rate_limit_per_minute"`
	CreatedAt          time.Time  `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt          time.Time  `bun:"updated_at,notnull,default:current_timestamp"`
	DeletedAt          *time.Time `bun:"deleted_at"`

	Stacks []*Stack `bun:"rel:has-many,join:id=generator_id"`
}

// Stack is a named unit of deployment owned by one generator.
type Stack struct {
	bun.BaseModel `bun:"table:stacks,alias:s"`

	ID          uuid.UUID  `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	Name        string     `bun:"name,notnull"`
	Description *string    `bun:"description"`
	GeneratorID uuid.UUID  `bun:"generator_id,type:uuid,notnull"`
	CreatedAt   time.Time  `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt   time.Time  `bun:"updated_at,notnull,default:current_timestamp"`
	DeletedAt   *time.Time `bun:"deleted_at"`

	Generator         *Generator          `bun:"rel:belongs-to,join:generator_id=id"`
	DeploymentObjects []*DeploymentObject `bun:"rel:has-many,join:id=stack_id"`
	Labels            []*StackLabel       `bun:"rel:has-many,join:id=stack_id"`
	Annotations       []*StackAnnotation  `bun:"rel:has-many,join:id=stack_id"`
	Targets           []*AgentTarget      `bun:"rel:has-many,join:id=stack_id"`

	// DeletionMarker is the marker DeleteStack's soft delete published:
	// the answer to the deleter shows it as the stack's latest object, to a
	// generator too, whose scope sees only live stacks' objects.
	DeletionMarker *DeploymentObject `bun:"-"`
}

// DeploymentObject is an immutable YAML bundle submitted to a stack. Its
// SequenceID (assigned by the database) orders all objects globally.
type DeploymentObject struct {
	bun.BaseModel `bun:"table:deployment_objects,alias:d"`

	ID               uuid.UUID  `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	SequenceID       int64      `bun:"sequence_id,notnull,scanonly"`
	StackID          uuid.UUID  `bun:"stack_id,type:uuid,notnull"`
	YamlContent      string     `bun:"yaml_content,notnull"`
	YamlChecksum     string     `bun:"yaml_checksum,notnull"`
	SubmittedAt      time.Time  `bun:"submitted_at,notnull,default:current_timestamp"`
	IsDeletionMarker bool       `bun:"is_deletion_marker,notnull,default:false"`
	CreatedAt        time.Time  `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt        time.Time  `bun:"updated_at,notnull,default:current_timestamp"`
	DeletedAt        *time.Time `bun:"deleted_at"`

	Stack  *Stack        `bun:"rel:belongs-to,join:stack_id=id"`
	Events []*AgentEvent `bun:"rel:has-many,join:id=deployment_object_id"`
}

// Agent runs in one cluster and applies the deployment objects of the stacks
// it targets.
type Agent struct {
	bun.BaseModel `bun:"table:agents,alias:a"`

	ID            uuid.UUID   `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	Name          string      `bun:"name,notnull"`
	ClusterName   string      `bun:"cluster_name,notnull"`
	Status        AgentStatus `bun:"status,notnull,default:'INACTIVE'"`
	LastHeartbeat *time.Time  `bun:"last_heartbeat"`
	PakHash       *string     `bun:"pak_hash" json:"-"`
	CreatedAt     time.Time   `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt     time.Time   `bun:"updated_at,notnull,default:current_timestamp"`
	DeletedAt     *time.Time  `bun:"deleted_at"`

	Labels      []*AgentLabel      `bun:"rel:has-many,join:id=agent_id"`
	Annotations []*AgentAnnotation `bun:"rel:has-many,join:id=agent_id"`
	Targets     []*AgentTarget     `bun:"rel:has-many,join:id=agent_id"`
	Events      []*AgentEvent      `bun:"rel:has-many,join:id=agent_id"`
}

// AgentEvent is an agent's report about one deployment object.
type AgentEvent struct {
	bun.BaseModel `bun:"table:agent_events,alias:e"`

	ID                 uuid.UUID  `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	AgentID            uuid.UUID  `bun:"agent_id,type:uuid,notnull"`
	DeploymentObjectID uuid.UUID  `bun:"deployment_object_id,type:uuid,notnull"`
	EventType          string     `bun:"event_type,notnull"`
	Status             string     `bun:"status,notnull"`
	Message            *string    `bun:"message"`
	CreatedAt          time.Time  `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt          time.Time  `bun:"updated_at,notnull,default:current_timestamp"`
	DeletedAt          *time.Time `bun:"deleted_at"`

	Agent            *Agent            `bun:"rel:belongs-to,join:agent_id=id"`
	DeploymentObject *DeploymentObject `bun:"rel:belongs-to,join:deployment_object_id=id"`
}

// AgentTarget points an agent at a stack.
type AgentTarget struct {
	bun.BaseModel `bun:"table:agent_targets,alias:t"`

	ID          uuid.UUID  `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	AgentID     uuid.UUID  `bun:"agent_id,type:uuid,notnull"`
	StackID     uuid.UUID  `bun:"stack_id,type:uuid,notnull"`
	CreatedAt   time.Time  `bun:"created_at,notnull,default:current_timestamp"`
	AnnouncedAt *time.Time `bun:"announced_at"`
	// AnnouncedSeq is the feed position at which the feed last handed this
	// stack's latest object to the agent out of order (-1: in order).
	AnnouncedSeq *int64 `bun:"announced_seq"`

	Agent *Agent `bun:"rel:belongs-to,join:agent_id=id"`
	Stack *Stack `bun:"rel:belongs-to,join:stack_id=id"`
}

// StackLabel is a single-value label on a stack.
type StackLabel struct {
	bun.BaseModel `bun:"table:stack_labels,alias:sl"`

	ID        uuid.UUID `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	StackID   uuid.UUID `bun:"stack_id,type:uuid,notnull"`
	Label     string    `bun:"label,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt time.Time `bun:"updated_at,notnull,default:current_timestamp"`
}

// StackAnnotation is a key = value annotation on a stack (one value per key).
type StackAnnotation struct {
	bun.BaseModel `bun:"table:stack_annotations,alias:sa"`

	ID        uuid.UUID `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	StackID   uuid.UUID `bun:"stack_id,type:uuid,notnull"`
	Key       string    `bun:"key,notnull"`
	Value     string    `bun:"value,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt time.Time `bun:"updated_at,notnull,default:current_timestamp"`
}

// AgentLabel is a single-value label on an agent.
type AgentLabel struct {
	bun.BaseModel `bun:"table:agent_labels,alias:al"`

	ID        uuid.UUID `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	AgentID   uuid.UUID `bun:"agent_id,type:uuid,notnull"`
	Label     string    `bun:"label,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt time.Time `bun:"updated_at,notnull,default:current_timestamp"`
}

// AgentAnnotation is a key = value annotation on an agent (one value per key).
type AgentAnnotation struct {
	bun.BaseModel `bun:"table:agent_annotations,alias:aa"`

	ID        uuid.UUID `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	AgentID   uuid.UUID `bun:"agent_id,type:uuid,notnull"`
	Key       string    `bun:"key,notnull"`
	Value     string    `bun:"value,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt time.Time `bun:"updated_at,notnull,default:current_timestamp"`
}

// AdminKey is the hash of the admin API key; at most one row is live.
type AdminKey struct {
	bun.BaseModel `bun:"table:admin_keys,alias:ak"`

	ID        uuid.UUID  `bun:"id,pk,type:uuid,default:gen_random_uuid()"`
	PakHash   string     `bun:"pak_hash,notnull"`
	CreatedAt time.Time  `bun:"created_at,notnull,default:current_timestamp"`
	UpdatedAt time.Time  `bun:"updated_at,notnull,default:current_timestamp"`
	DeletedAt *time.Time `bun:"deleted_at"`
}
