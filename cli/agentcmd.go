package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/brokkr/brokkr/agent"
	"github.com/brokkr/brokkr/applier"
)

// The appliers of `agent run`.
const (
	applierDir        = "dir"
	applierExec       = "exec"
	applierKubernetes = "kubernetes"
)

func agentCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "The reference agent: apply what the broker sends",
		Args:  usageArgs(cobra.NoArgs),
	}
	clientFlags(cmd)
	run := &cobra.Command{
		Use:   "run --applier dir|exec|kubernetes [flags]",
		Short: "Run the agent: follow its feed, apply each object, report an event",
		Long: `Run the agent of the key in BROKKR_KEY (an agent's key: brokkr agents create).

It follows the agent's feed over a websocket and, for every deployment object,
in feed order, applies it with the applier and reports a DEPLOY event: SUCCESS,
or FAILURE with the error as the message. It keeps its place in the state file
(--state, written atomically after each object is applied and reported) and
resumes after it on restart: no object is applied twice, none is missed. It
reconnects by itself when the broker restarts or the network fails, sends a
heartbeat every --heartbeat, waits silently while the agent is INACTIVE (and
applies its desired state once an admin activates it), and stops cleanly on
SIGTERM or SIGINT, finishing the object in hand.

Appliers:
  dir         keeps DIR/<stack name>.yaml equal to the stack's latest object
              (written atomically; removed by a deletion marker): a GitOps
              hand-off, and the applier for trying Brokkr out.
  exec        runs /bin/sh -c CMD with the object's YAML on standard input and
              BROKKR_STACK_ID, BROKKR_STACK_NAME, BROKKR_SEQUENCE_ID and
              BROKKR_DELETION_MARKER (true/false) in its environment (not
              BROKKR_KEY); exit status 0 is SUCCESS, anything else FAILURE
              with the end of its output.
  kubernetes  server-side applies the documents (field manager brokkr;
              namespaces and CRDs first), labels every object
              brokkr.io/stack=<stack id>, prunes what the stack's previous
              object had and the new one lacks (from an inventory ConfigMap in
              brokkr-system), and removes everything on a deletion marker.
              The cluster: --kubeconfig, else the pod's service account, else
              $KUBECONFIG or ~/.kube/config.`,
		Example: `  BROKKR_KEY=$AGENT_KEY brokkr agent run --applier dir --dir ./applied
  BROKKR_KEY=$AGENT_KEY brokkr agent run --applier exec --command 'kubectl apply -f -'
  BROKKR_KEY=$AGENT_KEY brokkr agent run --applier kubernetes --state /var/lib/brokkr/agent.json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: runE("info", agentRun),
	}
	f := run.Flags()
	f.String("applier", "", "dir, exec or kubernetes (required)")
	f.String("dir", "", "dir: the directory to keep the stacks' files in")
	f.String("command", "", "exec: the shell command to run for each object")
	f.Duration("exec-timeout", applier.DefaultExecTimeout, "exec: how long one run may take")
	f.String("kubeconfig", "", "kubernetes: the kubeconfig file")
	f.String("state", "brokkr-agent.json", "the state file (the agent's place in its feed)")
	f.Duration("heartbeat", agent.DefaultHeartbeat, "the interval of heartbeats")
	f.Duration("shutdown-grace", agent.DefaultShutdownGrace, "on SIGTERM, how long the object in hand may take to finish")
	cmd.AddCommand(run)
	return cmd
}

func agentRun(s *session, _ []string) error {
	a, err := s.newApplier()
	if err != nil {
		return err
	}
	flags := s.cmd.Flags()
	state, _ := flags.GetString("state")
	heartbeat, _ := flags.GetDuration("heartbeat")
	grace, _ := flags.GetDuration("shutdown-grace")
	if state == "" {
		return usage(errors.New("--state must name a file"))
	}
	if heartbeat < time.Second {
		return usage(fmt.Errorf("--heartbeat must be at least 1s, not %s", heartbeat))
	}
	return agent.Run(s.cmd.Context(), agent.Config{
		Client:        s.c,
		Applier:       a,
		StatePath:     state,
		Heartbeat:     heartbeat,
		ShutdownGrace: grace,
		Logger:        s.log,
	})
}

// newApplier builds the applier the flags name.
func (s *session) newApplier() (applier.Applier, error) {
	flags := s.cmd.Flags()
	kind, _ := flags.GetString("applier")
	switch kind {
	case applierDir:
		dir, _ := flags.GetString("dir")
		if dir == "" {
			return nil, usage(errors.New("--applier dir needs --dir"))
		}
		return applier.NewDir(dir)
	case applierExec:
		command, _ := flags.GetString("command")
		if command == "" {
			return nil, usage(errors.New("--applier exec needs --command"))
		}
		timeout, _ := flags.GetDuration("exec-timeout")
		return applier.NewExec(command, applier.ExecOptions{Timeout: timeout})
	case applierKubernetes:
		path, _ := flags.GetString("kubeconfig")
		cfg, err := applier.LoadConfig(path)
		if err != nil {
			return nil, err
		}
		return applier.NewKubernetes(cfg, applier.KubernetesOptions{Logger: s.log})
	case "":
		return nil, usage(errors.New("--applier is required: dir, exec or kubernetes"))
	}
	return nil, usage(fmt.Errorf("--applier must be dir, exec or kubernetes, not %q", kind))
}
