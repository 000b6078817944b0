// Package applier holds what the reference agent (`brokkr agent run`) does
// with each deployment object it receives: the [Applier] interface and its
// three implementations.
//
//   - [Dir] (--applier dir --dir D) keeps D/<stack name>.yaml equal to the
//     stack's latest object: a GitOps hand-off, and the applier for trying
//     Brokkr out.
//   - [Exec] (--applier exec --command CMD) runs a command with the object's
//     YAML on stdin.
//   - [Kubernetes] (--applier kubernetes) server-side applies the object's
//     documents to a cluster and prunes what the stack no longer has.
//
// The contract with the agent: the agent calls Apply once per deployment
// object, in sequenceId order, and never for two objects of the same stack
// at once (objects of different stacks may be applied concurrently). Apply
// returning nil is reported as a DEPLOY event with status SUCCESS; an error
// as FAILURE with err.Error() as the message, so errors are written for the
// person reading the event: what failed and why, without Go internals. An
// applier must be idempotent: applying the same object twice (an agent that
// restarts before recording its cursor) leaves the same result. A deletion
// marker means "remove everything this stack put there"; for a stack that
// never applied anything it succeeds and does nothing.
package applier

import "context"

// Object is one deployment object as the agent receives it from its feed.
type Object struct {
	StackID    string // the stack's id (stable; names can change)
	StackName  string // the stack's name (any non-empty text up to 255 characters)
	SequenceID int64  // the object's global sequence id
	// YAML is the object's content: one or more YAML documents separated by
	// "---" lines. Empty for a deletion marker.
	YAML             string
	IsDeletionMarker bool
}

// Applier applies deployment objects. See the package documentation for the
// contract.
type Applier interface {
	Apply(ctx context.Context, obj Object) error
}

// HealthStatus is the health of what a stack applied, in the vocabulary
// agents report (issue 12): the worst of a stack's parts wins.
type HealthStatus string

// The health statuses, from best to worst, and Unknown when an applier
// cannot tell.
const (
	Healthy  HealthStatus = "HEALTHY"
	Degraded HealthStatus = "DEGRADED" // present but not (yet) working as declared
	Failing  HealthStatus = "FAILING"  // missing or broken
	Unknown  HealthStatus = "UNKNOWN"  // nothing applied, or nothing to judge by
)

// Health is a stack's health and a message saying why (empty when Healthy).
type Health struct {
	Status  HealthStatus
	Message string
}

// HealthChecker is implemented by appliers that can tell how what they
// applied is doing (only [Kubernetes] for now). The agent checks with a type
// assertion and reports nothing for appliers that do not implement it.
type HealthChecker interface {
	Health(ctx context.Context, stackID string) (Health, error)
}
