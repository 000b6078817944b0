package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/brokkr/brokkr/client"
)

func pushCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "push --stack NAME [--create] PATH...",
		Short: "Publish YAML files as the stack's new deployment object",
		Long: `Publish the YAML documents of the files given as one new deployment object of
the stack, and print its sequence id.

Each PATH is a file, a directory (its *.yaml and *.yml files, recursively,
sorted by path; hidden files and directories are skipped) or - (standard
input). The files' contents are joined with "---" lines, in the order given.

The documents are checked locally before anything is sent: with
--validate kubernetes (the default) every document must be a Kubernetes
object (apiVersion, kind, metadata.name) and none may appear twice; with
--validate yaml they need only parse.

When the content equals the stack's latest object (same SHA-256), nothing is
published and push says so, exiting 0: a CI job can push on every build.

NAME is a stack name (or id) of the key's generator; admins name the
generator with --generator. --create creates the stack when it is missing.`,
		Example: `  BROKKR_KEY=$GEN_KEY brokkr push --stack web --create manifests/
  helm template web ./chart | brokkr push --stack web -`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: runE("warn", push),
	}
	f := cmd.Flags()
	f.String("stack", "", "the stack: name or id (required)")
	f.Bool("create", false, "create the stack when it does not exist")
	f.String("generator", "", "admins: the stack's generator (name or id)")
	f.String("description", "", "with --create: the new stack's description")
	f.String("validate", validateKubernetes, "local check before publishing: kubernetes or yaml")
	return clientFlags(cmd)
}

// pushResult is what push prints with -o json.
type pushResult struct {
	Stack        stackRef `json:"stack"`
	Published    bool     `json:"published"`
	StackCreated bool     `json:"stackCreated"`
	ID           string   `json:"id"`
	SequenceID   int64    `json:"sequenceId"`
	YAMLChecksum string   `json:"yamlChecksum"`
}

type stackRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func push(s *session, paths []string) error {
	ctx := s.cmd.Context()
	name, _ := s.cmd.Flags().GetString("stack")
	if name == "" {
		return usage(errors.New("--stack is required"))
	}
	mode, _ := s.cmd.Flags().GetString("validate")
	files, err := readManifests(paths, s.cmd.InOrStdin())
	if err != nil {
		return err
	}
	if err := validateManifests(files, mode); err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			return err
		}
		return fmt.Errorf("invalid manifests, nothing published: %w", err)
	}
	content := joinManifests(files)
	sum := sha256.Sum256([]byte(content))
	checksum := hex.EncodeToString(sum[:])

	stack, created, err := s.pushTarget(ctx, name)
	if err != nil {
		return err
	}
	res := pushResult{Stack: stackRef{stack.Id, stack.Name}, StackCreated: created, YAMLChecksum: checksum}
	if latest := stack.LatestDeploymentObject; latest != nil && !latest.IsDeletionMarker && latest.YamlChecksum == checksum {
		res.ID, res.SequenceID = latest.Id, latest.SequenceId
		return s.emit(res, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "Unchanged: stack %s already has this content (sequence %d); nothing published.\n", stack.Name, latest.SequenceId)
		})
	}
	obj, err := s.publish(ctx, stack.Id, content, checksum)
	if err != nil {
		return err
	}
	res.Published, res.ID, res.SequenceID = true, obj.Id, obj.SequenceId
	return s.emit(res, func(w *tabwriter.Writer) {
		if created {
			fmt.Fprintf(w, "Created stack %s (%s).\n", stack.Name, stack.Id)
		}
		fmt.Fprintf(w, "Published stack %s: sequence %d (checksum %s)\n", stack.Name, obj.SequenceId, checksum[:12])
	})
}

// pushTarget finds the stack, creating it with --create when missing.
func (s *session) pushTarget(ctx context.Context, name string) (*client.StackFields, bool, error) {
	stack, err := s.stack(ctx, name)
	create, _ := s.cmd.Flags().GetBool("create")
	if err == nil || !create || client.ErrorCode(err) != client.CodeNotFound || isID(name) {
		return stack, false, err
	}
	stack, err = s.createStack(ctx, name, nil, nil)
	if client.ErrorCode(err) == client.CodeConflict { // created meanwhile (another CI job)
		stack, err = s.stack(ctx, name)
		return stack, false, err
	}
	return stack, err == nil, err
}

// createStack creates a stack of the --generator flag's generator (admins
// must give one) or of the key's generator.
func (s *session) createStack(ctx context.Context, name string, labels []string, annotations []client.AnnotationInput) (*client.StackFields, error) {
	gen, err := s.generatorScope(ctx)
	if err != nil {
		return nil, err
	}
	if gen == nil {
		v, err := s.whoAmI(ctx)
		if err != nil {
			return nil, err
		}
		if v.Role == client.RoleAdmin {
			return nil, usage(errors.New("admins create a stack for a generator: pass --generator NAME"))
		}
	}
	var desc *string
	if d, _ := s.cmd.Flags().GetString("description"); d != "" {
		desc = &d
	}
	r, err := client.CreateStack(ctx, s.c, gen, name, desc, labels, annotations)
	if err != nil {
		return nil, err
	}
	return r.CreateStack, nil
}

// maxPublishAttempts bounds the attempts of one publication whose outcome
// was unknown.
const maxPublishAttempts = 5

// publish creates the deployment object. An attempt whose outcome is
// unknown (UNAVAILABLE, or the answer lost: it may have been committed) is
// checked for, by the stack's latest checksum, before it is sent again.
func (s *session) publish(ctx context.Context, stackID, content, checksum string) (*client.ObjectFields, error) {
	for attempt := 1; ; attempt++ {
		r, err := client.CreateDeploymentObject(ctx, s.c, stackID, content)
		if err == nil && r.CreateDeploymentObject != nil {
			return r.CreateDeploymentObject, nil
		}
		code := client.ErrorCode(err)
		if (code != client.CodeUnavailable && code != "") || ctx.Err() != nil || attempt == maxPublishAttempts {
			return nil, err
		}
		if st, lerr := client.Stack(ctx, s.c, stackID); lerr == nil && st.Stack != nil {
			if l := st.Stack.LatestDeploymentObject; l != nil && l.YamlChecksum == checksum {
				return l, nil // the lost attempt was committed
			}
		}
		wait, _ := client.RetryAfter(err)
		wait = max(wait, time.Duration(attempt)*time.Second)
		s.log.Warn("publishing failed; trying again", "in", wait, "err", client.Describe(err))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
