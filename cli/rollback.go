package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/brokkr/brokkr/client"
)

func rollbackCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollback --stack NAME --to SEQ|ID",
		Short: "Publish an older deployment object's content again",
		Long: `Publish the content of one of the stack's earlier deployment objects as its new
deployment object (deployment objects are immutable: a rollback is a new one),
and print its sequence id. --to is the older object's sequence id or id;
"brokkr stacks history NAME" lists them.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: runE("warn", rollback),
	}
	f := cmd.Flags()
	f.String("stack", "", "the stack: name or id (required)")
	f.String("to", "", "the object to go back to: its sequence id or id (required)")
	f.String("generator", "", "admins: the stack's generator (name or id)")
	return clientFlags(cmd)
}

func rollback(s *session, _ []string) error {
	ctx := s.cmd.Context()
	name, _ := s.cmd.Flags().GetString("stack")
	to, _ := s.cmd.Flags().GetString("to")
	if name == "" || to == "" {
		return usage(errors.New("--stack and --to are required"))
	}
	stack, err := s.stack(ctx, name)
	if err != nil {
		return err
	}
	target, err := s.objectOf(ctx, stack, to)
	if err != nil {
		return err
	}
	r, err := client.RollbackStack(ctx, s.c, stack.Id, target.Id)
	if err != nil {
		return err
	}
	obj := r.RollbackStack
	res := pushResult{Stack: stackRef{stack.Id, stack.Name}, Published: true, ID: obj.Id, SequenceID: obj.SequenceId, YAMLChecksum: obj.YamlChecksum}
	return s.emit(res, func(w *tabwriter.Writer) {
		fmt.Fprintf(w, "Rolled stack %s back to the content of sequence %d: sequence %d\n", stack.Name, target.SequenceId, obj.SequenceId)
	})
}

// objectOf finds one of the stack's deployment objects by sequence id or id.
func (s *session) objectOf(ctx context.Context, stack *client.StackFields, ref string) (*client.ObjectFields, error) {
	seq, bySeq := int64(0), !isID(ref)
	if bySeq {
		n, err := strconv.ParseInt(ref, 10, 64)
		if err != nil || n <= 0 {
			return nil, usage(fmt.Errorf("--to must be a sequence id (a positive number) or an object id, not %q", ref))
		}
		seq = n
	}
	var found *client.ObjectFields
	err := s.history(ctx, stack.Id, func(o *client.ObjectFields) bool {
		if (bySeq && o.SequenceId == seq) || (!bySeq && o.Id == ref) {
			found = o
			return false
		}
		return !bySeq || o.SequenceId > seq // newest first: past it, it is not there
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, notFound("stack %s has no deployment object %s", stack.Name, ref)
	}
	return found, nil
}

// history calls fn for the stack's deployment objects, newest first, while
// fn returns true.
func (s *session) history(ctx context.Context, stackID string, fn func(*client.ObjectFields) bool) error {
	var after *string
	first := pageSize
	for {
		r, err := client.StackHistory(ctx, s.c, stackID, &first, after)
		if err != nil {
			return err
		}
		if r.Stack == nil {
			return notFound("stack %s not found", stackID)
		}
		page := r.Stack.DeploymentObjects
		for i := range page.Nodes {
			if !fn(&page.Nodes[i]) {
				return nil
			}
		}
		if !page.PageInfo.HasNextPage {
			return nil
		}
		after = page.PageInfo.EndCursor
	}
}
