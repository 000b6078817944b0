package models

import (
	"time"

	"github.com/google/uuid"
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
