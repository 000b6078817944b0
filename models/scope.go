package models

import "github.com/google/uuid"

// Role is who is behind an API key.
type Role string

const (
	RoleAdmin     Role = "ADMIN"
	RoleGenerator Role = "GENERATOR"
	RoleAgent     Role = "AGENT"
)

// Scope is the caller's identity as the domain functions see it. Every read
// and write takes a Scope and applies its boundary in SQL, in this package,
// so tenancy is decided in one place:
//   - admin: everything;
//   - generator: itself, its own live stacks, their labels, annotations,
//     deployment objects, events and targets, and (read only) the agents
//     that target one of its stacks; other generators' rows answer NotFound;
//   - agent: itself, its targets, the stacks it targets and their deployment
//     objects (only while it is ACTIVE; deletion markers of targeted stacks
//     that were deleted included), its own events.
//
// The conditions themselves live in scoping.go, one function per table.
type Scope struct {
	Role        Role
	GeneratorID uuid.UUID // set when Role == RoleGenerator
	AgentID     uuid.UUID // set when Role == RoleAgent

	// RateLimitPerMinute is the generator's own limit as read when the key
	// was authenticated (nil = the server default; generators only).
	RateLimitPerMinute *int32
}

// GeneratorScope is the scope of the generator with this id.
func GeneratorScope(id uuid.UUID) Scope { return Scope{Role: RoleGenerator, GeneratorID: id} }

// AgentScope is the scope of the agent with this id.
func AgentScope(id uuid.UUID) Scope { return Scope{Role: RoleAgent, AgentID: id} }

// AdminScope is the unrestricted scope (server-internal work and admins).
var AdminScope = Scope{Role: RoleAdmin}

// IsAdmin reports whether the scope is unrestricted.
func (s Scope) IsAdmin() bool { return s.Role == RoleAdmin }
