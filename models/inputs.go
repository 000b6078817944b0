package models

import (
	"github.com/99designs/gqlgen/graphql"
	"github.com/google/uuid"
)

// Inputs and payloads of the GraphQL mutations; gqlgen autobinds them by name.

// CreateGeneratorInput creates a generator (admins).
type CreateGeneratorInput struct {
	Name               string  `json:"name"`
	Description        *string `json:"description,omitempty"`
	RateLimitPerMinute *int32  `json:"rateLimitPerMinute,omitempty"`
}

// UpdateGeneratorInput changes the given fields of a generator (admins).
// RateLimitPerMinute tells omitted (unchanged) from null (back to the
// server default): gqlgen sets an Omittable only for a field the input has.
type UpdateGeneratorInput struct {
	ID                 uuid.UUID                 `json:"id"`
	Name               *string                   `json:"name,omitempty"`
	Description        *string                   `json:"description,omitempty"`
	IsActive           *bool                     `json:"isActive,omitempty"`
	RateLimitPerMinute graphql.Omittable[*int32] `json:"rateLimitPerMinute,omitzero"`
}

// CreateStackInput creates a stack. GeneratorID is required for admins; a
// generator's stacks always belong to itself (a different GeneratorID is
// answered NotFound, a matching one is accepted).
type CreateStackInput struct {
	GeneratorID *uuid.UUID         `json:"generatorId,omitempty"`
	Name        string             `json:"name"`
	Description *string            `json:"description,omitempty"`
	Labels      []string           `json:"labels,omitempty"`
	Annotations []*AnnotationInput `json:"annotations,omitempty"`
}

// UpdateStackInput changes the given fields of a stack.
type UpdateStackInput struct {
	ID          uuid.UUID `json:"id"`
	Name        *string   `json:"name,omitempty"`
	Description *string   `json:"description,omitempty"`
}

// CreateDeploymentObjectInput submits YAML to a stack.
type CreateDeploymentObjectInput struct {
	StackID     uuid.UUID `json:"stackId"`
	YamlContent string    `json:"yamlContent"`
}

// CreateAgentInput creates an agent (admins). New agents are INACTIVE.
type CreateAgentInput struct {
	Name        string             `json:"name"`
	ClusterName string             `json:"clusterName"`
	Labels      []string           `json:"labels,omitempty"`
	Annotations []*AnnotationInput `json:"annotations,omitempty"`
}

// UpdateAgentInput changes the given fields of an agent. Status: admins only.
type UpdateAgentInput struct {
	ID          uuid.UUID    `json:"id"`
	Name        *string      `json:"name,omitempty"`
	ClusterName *string      `json:"clusterName,omitempty"`
	Status      *AgentStatus `json:"status,omitempty"`
}

// ReportAgentEventInput is an agent's report about a deployment object.
type ReportAgentEventInput struct {
	DeploymentObjectID uuid.UUID `json:"deploymentObjectId"`
	EventType          string    `json:"eventType"`
	Status             string    `json:"status"`
	Message            *string   `json:"message,omitempty"`
}

// GeneratorWithKey is a generator with its new API key (shown once).
type GeneratorWithKey struct {
	Generator *Generator `json:"generator"`
	APIKey    string     `json:"apiKey"`
}

// AgentWithKey is an agent with its new API key (shown once).
type AgentWithKey struct {
	Agent  *Agent `json:"agent"`
	APIKey string `json:"apiKey"`
}
