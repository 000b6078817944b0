package cli

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/brokkr/brokkr/client"
)

func stacksCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stacks",
		Short: "List, create and delete stacks; their labels and annotations",
		Long: `Stacks are named units of deployment owned by a generator. A stack is named by
its name (within the key's generator; admins pass --generator) or its id.`,
		Args: usageArgs(cobra.NoArgs),
	}
	clientFlags(cmd)
	cmd.PersistentFlags().String("generator", "", "admins: the generator (name or id) whose stacks these are")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the stacks the key sees",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  runE("warn", stacksList),
	}
	list.Flags().StringSlice("label", nil, "only stacks with this label (repeatable: all of them)")

	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a stack",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE:  runE("warn", stacksCreate),
	}
	create.Flags().String("description", "", "the stack's description")
	create.Flags().StringSlice("label", nil, "a label (repeatable)")
	create.Flags().StringArray("annotation", nil, "an annotation KEY=VALUE (repeatable)")

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a stack: its agents remove what it applied (a deletion marker)",
		Long: `Delete a stack. A soft delete (the default) publishes a deletion marker, on which
agents remove everything the stack applied; admins can restore it. --hard
(admins) removes the stack and everything under it for good.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: runE("warn", stacksDelete),
	}
	del.Flags().Bool("hard", false, "admins: remove the stack and its history for good")

	history := &cobra.Command{
		Use:   "history NAME",
		Short: "List a stack's deployment objects, newest first",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE:  runE("warn", stacksHistory),
	}
	history.Flags().Int("limit", 20, "how many (0: all)")

	cmd.AddCommand(list, create, del, history, labelsCommand(), annotationsCommand())
	return cmd
}

// stackRow is a stack as the tables and JSON show it.
func stackTable(w *tabwriter.Writer, stacks []client.StackFields) {
	row(w, "NAME", "ID", "GENERATOR", "LATEST", "LABELS", "ANNOTATIONS", "CREATED")
	for _, st := range stacks {
		latest := "-"
		if l := st.LatestDeploymentObject; l != nil {
			latest = fmt.Sprint(l.SequenceId)
			if l.IsDeletionMarker {
				latest += " (deleted)"
			}
		}
		var ann []string
		for _, a := range st.Annotations {
			ann = append(ann, a.Key+"="+a.Value)
		}
		row(w, st.Name, st.Id, st.Generator.Name, latest, st.Labels, ann, st.CreatedAt)
	}
}

func stacksList(s *session, _ []string) error {
	ctx := s.cmd.Context()
	gen, err := s.generatorScope(ctx)
	if err != nil {
		return err
	}
	labels, _ := s.cmd.Flags().GetStringSlice("label")
	stacks, err := s.stacks(ctx, &client.StackFilter{GeneratorId: gen, Labels: labels})
	if err != nil {
		return err
	}
	return s.emit(orEmpty(stacks), func(w *tabwriter.Writer) { stackTable(w, stacks) })
}

func stacksCreate(s *session, args []string) error {
	ctx := s.cmd.Context()
	labels, _ := s.cmd.Flags().GetStringSlice("label")
	raw, _ := s.cmd.Flags().GetStringArray("annotation")
	annotations, err := parseAnnotations(raw)
	if err != nil {
		return err
	}
	st, err := s.createStack(ctx, args[0], labels, annotations)
	if err != nil {
		return err
	}
	return s.emit(st, func(w *tabwriter.Writer) { stackTable(w, []client.StackFields{*st}) })
}

// parseAnnotations reads KEY=VALUE pairs.
func parseAnnotations(raw []string) ([]client.AnnotationInput, error) {
	var out []client.AnnotationInput
	for _, kv := range raw {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usage(fmt.Errorf("an annotation is KEY=VALUE, not %q", kv))
		}
		out = append(out, client.AnnotationInput{Key: k, Value: v})
	}
	return out, nil
}

func stacksDelete(s *session, args []string) error {
	ctx := s.cmd.Context()
	st, err := s.stack(ctx, args[0])
	if err != nil {
		return err
	}
	hard, _ := s.cmd.Flags().GetBool("hard")
	r, err := client.DeleteStack(ctx, s.c, st.Id, &hard)
	if err != nil {
		return err
	}
	return s.emit(r.DeleteStack, func(w *tabwriter.Writer) {
		switch {
		case hard:
			fmt.Fprintf(w, "Deleted stack %s for good.\n", st.Name)
		case r.DeleteStack != nil && r.DeleteStack.LatestDeploymentObject != nil:
			fmt.Fprintf(w, "Deleted stack %s: deletion marker at sequence %d; its agents remove what it applied.\n",
				st.Name, r.DeleteStack.LatestDeploymentObject.SequenceId)
		default:
			fmt.Fprintf(w, "Deleted stack %s.\n", st.Name)
		}
	})
}

func stacksHistory(s *session, args []string) error {
	ctx := s.cmd.Context()
	st, err := s.stack(ctx, args[0])
	if err != nil {
		return err
	}
	limit, _ := s.cmd.Flags().GetInt("limit")
	var objs []client.ObjectFields
	err = s.history(ctx, st.Id, func(o *client.ObjectFields) bool {
		objs = append(objs, *o)
		return limit <= 0 || len(objs) < limit
	})
	if err != nil {
		return err
	}
	return s.emit(orEmpty(objs), func(w *tabwriter.Writer) {
		row(w, "SEQUENCE", "ID", "CHECKSUM", "SUBMITTED", "DELETION MARKER")
		for _, o := range objs {
			row(w, o.SequenceId, o.Id, o.YamlChecksum[:12], o.SubmittedAt, o.IsDeletionMarker)
		}
	})
}

func labelsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "labels", Short: "Add or remove a stack's labels", Args: usageArgs(cobra.NoArgs)}
	add := &cobra.Command{
		Use:   "add NAME LABEL...",
		Short: "Add labels to a stack",
		Args:  usageArgs(cobra.MinimumNArgs(2)),
		RunE: runE("warn", func(s *session, args []string) error {
			return s.editStack(args[0], args[1:], func(id, label string) (*client.StackFields, error) {
				r, err := client.AddStackLabel(s.cmd.Context(), s.c, id, label)
				return r.AddStackLabel, err
			})
		}),
	}
	remove := &cobra.Command{
		Use:   "remove NAME LABEL...",
		Short: "Remove labels from a stack",
		Args:  usageArgs(cobra.MinimumNArgs(2)),
		RunE: runE("warn", func(s *session, args []string) error {
			return s.editStack(args[0], args[1:], func(id, label string) (*client.StackFields, error) {
				r, err := client.RemoveStackLabel(s.cmd.Context(), s.c, id, label)
				return r.RemoveStackLabel, err
			})
		}),
	}
	cmd.AddCommand(add, remove)
	return cmd
}

func annotationsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "annotations", Short: "Set or remove a stack's annotations", Args: usageArgs(cobra.NoArgs)}
	set := &cobra.Command{
		Use:   "set NAME KEY=VALUE...",
		Short: "Set annotations of a stack (one value per key)",
		Args:  usageArgs(cobra.MinimumNArgs(2)),
		RunE: runE("warn", func(s *session, args []string) error {
			if _, err := parseAnnotations(args[1:]); err != nil {
				return err
			}
			return s.editStack(args[0], args[1:], func(id, kv string) (*client.StackFields, error) {
				k, v, _ := strings.Cut(kv, "=")
				r, err := client.SetStackAnnotation(s.cmd.Context(), s.c, id, k, v)
				return r.SetStackAnnotation, err
			})
		}),
	}
	remove := &cobra.Command{
		Use:   "remove NAME KEY...",
		Short: "Remove annotations from a stack",
		Args:  usageArgs(cobra.MinimumNArgs(2)),
		RunE: runE("warn", func(s *session, args []string) error {
			return s.editStack(args[0], args[1:], func(id, key string) (*client.StackFields, error) {
				r, err := client.RemoveStackAnnotation(s.cmd.Context(), s.c, id, key)
				return r.RemoveStackAnnotation, err
			})
		}),
	}
	cmd.AddCommand(set, remove)
	return cmd
}

// editStack applies edit to the stack for each item and shows the stack
// as the last edit left it.
func (s *session) editStack(name string, items []string, edit func(stackID, item string) (*client.StackFields, error)) error {
	st, err := s.stack(s.cmd.Context(), name)
	if err != nil {
		return err
	}
	for _, item := range items {
		if st, err = edit(st.Id, item); err != nil {
			return err
		}
	}
	return s.emit(st, func(w *tabwriter.Writer) { stackTable(w, []client.StackFields{*st}) })
}
