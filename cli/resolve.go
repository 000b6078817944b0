package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/brokkr/brokkr/client"
)

// pageSize is the page the CLI asks for when it lists everything.
const pageSize = 500

// isID says whether s is a UUID in its canonical form (an id, not a name).
func isID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// notFound is a NOT_FOUND error found by the CLI itself, in the broker's
// vocabulary.
func notFound(format string, args ...any) error {
	return gqlerror.List{{Message: fmt.Sprintf(format, args...), Extensions: map[string]any{"code": client.CodeNotFound}}}
}

// whoAmI is the caller (asked once).
func (s *session) whoAmI(ctx context.Context) (*client.ViewerViewer, error) {
	if s.viewer == nil {
		v, err := client.Viewer(ctx, s.c)
		if err != nil {
			return nil, err
		}
		s.viewer = &v.Viewer
	}
	return s.viewer, nil
}

// generatorScope is the generator id that names resolve within: the
// --generator flag (a name or an id; admins), or nil (a generator's own
// stacks; an admin without the flag: every generator's).
func (s *session) generatorScope(ctx context.Context) (*string, error) {
	g, _ := s.cmd.Flags().GetString("generator")
	if g == "" {
		return nil, nil
	}
	gen, err := s.generator(ctx, g)
	if err != nil {
		return nil, err
	}
	return &gen.Id, nil
}

// generator finds a generator by id or name.
func (s *session) generator(ctx context.Context, nameOrID string) (*client.GeneratorFields, error) {
	var filter *client.GeneratorFilter
	if !isID(nameOrID) {
		filter = &client.GeneratorFilter{Name: &nameOrID}
	}
	all, err := s.generators(ctx, filter)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Id == nameOrID || all[i].Name == nameOrID {
			return &all[i], nil
		}
	}
	return nil, notFound("generator %q not found", nameOrID)
}

// generators lists every generator the key sees, matching filter.
func (s *session) generators(ctx context.Context, filter *client.GeneratorFilter) ([]client.GeneratorFields, error) {
	var out []client.GeneratorFields
	var after *string
	first := pageSize
	for {
		r, err := client.Generators(ctx, s.c, &first, after, filter)
		if err != nil {
			return nil, err
		}
		out = append(out, r.Generators.Nodes...)
		if !r.Generators.PageInfo.HasNextPage {
			return out, nil
		}
		after = r.Generators.PageInfo.EndCursor
	}
}

// stacks lists every stack the key sees, matching filter.
func (s *session) stacks(ctx context.Context, filter *client.StackFilter) ([]client.StackFields, error) {
	var out []client.StackFields
	var after *string
	first := pageSize
	for {
		r, err := client.Stacks(ctx, s.c, &first, after, filter)
		if err != nil {
			return nil, err
		}
		out = append(out, r.Stacks.Nodes...)
		if !r.Stacks.PageInfo.HasNextPage {
			return out, nil
		}
		after = r.Stacks.PageInfo.EndCursor
	}
}

// stack finds a stack by id, or by name within the --generator flag's
// generator (a generator's key sees only its own stacks). An admin without
// --generator gets the one stack of that name, if there is only one.
func (s *session) stack(ctx context.Context, nameOrID string) (*client.StackFields, error) {
	if isID(nameOrID) {
		r, err := client.Stack(ctx, s.c, nameOrID)
		if err != nil {
			return nil, err
		}
		if r.Stack == nil {
			return nil, notFound("stack %s not found", nameOrID)
		}
		return r.Stack, nil
	}
	gen, err := s.generatorScope(ctx)
	if err != nil {
		return nil, err
	}
	found, err := s.stacks(ctx, &client.StackFilter{Name: &nameOrID, GeneratorId: gen})
	if err != nil {
		return nil, err
	}
	switch len(found) {
	case 0:
		return nil, notFound("stack %q not found", nameOrID)
	case 1:
		return &found[0], nil
	}
	var gens []string
	for _, st := range found {
		gens = append(gens, st.Generator.Name)
	}
	return nil, usage(fmt.Errorf("%d stacks are named %q (of generators %s): pass --generator", len(found), nameOrID, strings.Join(gens, ", ")))
}

// agents lists every agent the key sees, matching filter.
func (s *session) agents(ctx context.Context, filter *client.AgentFilter) ([]client.AgentFields, error) {
	var out []client.AgentFields
	var after *string
	first := pageSize
	for {
		r, err := client.Agents(ctx, s.c, &first, after, filter)
		if err != nil {
			return nil, err
		}
		out = append(out, r.Agents.Nodes...)
		if !r.Agents.PageInfo.HasNextPage {
			return out, nil
		}
		after = r.Agents.PageInfo.EndCursor
	}
}

// agentID resolves an agent given by id, or by name (then the --cluster
// flag narrows it, if the command has one). An id is taken as it is: a
// generator may target any agent by id, though it sees only the agents
// that target its stacks.
func (s *session) agentID(ctx context.Context, nameOrID string) (string, error) {
	if isID(nameOrID) {
		return nameOrID, nil
	}
	filter := &client.AgentFilter{Name: &nameOrID}
	if f := s.cmd.Flags().Lookup("cluster"); f != nil && f.Value.String() != "" {
		cluster := f.Value.String()
		filter.ClusterName = &cluster
	}
	found, err := s.agents(ctx, filter)
	if err != nil {
		return "", err
	}
	switch len(found) {
	case 0:
		return "", notFound("agent %q not found (generators name agents by id)", nameOrID)
	case 1:
		return found[0].Id, nil
	}
	var clusters []string
	for _, a := range found {
		clusters = append(clusters, a.ClusterName)
	}
	return "", usage(fmt.Errorf("%d agents are named %q (in clusters %s): pass --cluster or the agent's id", len(found), nameOrID, strings.Join(clusters, ", ")))
}
