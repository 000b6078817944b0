package applier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The environment variables an Exec command gets, besides the agent's own.
const (
	EnvStackID        = "BROKKR_STACK_ID"        // the stack's id
	EnvStackName      = "BROKKR_STACK_NAME"      // the stack's name
	EnvSequenceID     = "BROKKR_SEQUENCE_ID"     // the object's sequence id, in decimal
	EnvDeletionMarker = "BROKKR_DELETION_MARKER" // "true" for a deletion marker, else "false"
)

// DefaultExecTimeout bounds a command when ExecOptions.Timeout is zero.
const DefaultExecTimeout = 5 * time.Minute

// outputTail is how much of a failed command's output goes into the error
// (and so into the FAILURE event's message).
const outputTail = 2048

// ExecOptions tune an Exec applier.
type ExecOptions struct {
	// Timeout bounds each run (DefaultExecTimeout when zero). A command still
	// running then is killed, with every process it started.
	Timeout time.Duration
	// Dir is the command's working directory (the agent's when empty).
	Dir string
}

// Exec runs a shell command for every object: `/bin/sh -c COMMAND`, with the
// object's YAML on standard input (nothing for a deletion marker) and the
// BROKKR_* variables above in its environment (which is the agent's, less
// BROKKR_KEY, the agent's API key). Exit status 0 is SUCCESS;
// anything else, or a timeout, is FAILURE with the end of the command's
// output (standard output and error together) in the message. A command
// must therefore handle BROKKR_DELETION_MARKER=true itself, and be
// idempotent (it may see the same object twice after an agent restart).
//
// The command runs in its own process group so that a timeout kills what it
// started too (a `kubectl` under `sh`, say).
type Exec struct {
	command string
	opts    ExecOptions
}

// NewExec returns an Exec applier running command.
func NewExec(command string, opts ExecOptions) (*Exec, error) {
	if strings.TrimSpace(command) == "" {
		return nil, errors.New("the exec applier needs a command (--command)")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultExecTimeout
	}
	return &Exec{command: command, opts: opts}, nil
}

// Apply runs the command for obj.
func (e *Exec) Apply(ctx context.Context, obj Object) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", e.command)
	cmd.Dir = e.opts.Dir
	cmd.Env = append(environ(),
		EnvStackID+"="+obj.StackID,
		EnvStackName+"="+obj.StackName,
		EnvSequenceID+"="+strconv.FormatInt(obj.SequenceID, 10),
		EnvDeletionMarker+"="+strconv.FormatBool(obj.IsDeletionMarker),
	)
	cmd.Stdin = strings.NewReader(obj.YAML)
	out := &tailBuffer{max: outputTail}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// A grandchild that keeps the output pipe open must not hold Wait forever.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	var what string
	var exitErr *exec.ExitError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		what = fmt.Sprintf("timed out after %s", e.opts.Timeout)
	case ctx.Err() != nil:
		return ctx.Err() // the agent is stopping: not the command's fault
	case errors.As(err, &exitErr) && exitErr.Exited():
		what = fmt.Sprintf("exited with status %d", exitErr.ExitCode())
	default:
		what = err.Error()
	}
	msg := fmt.Sprintf("command %q %s", shorten(e.command, 200), what)
	if tail := out.String(); tail != "" {
		msg += ":\n" + tail
	}
	return errors.New(msg)
}

// environ is the agent's environment less BROKKR_KEY: the command has no
// business calling the broker as the agent.
func environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BROKKR_KEY=") {
			env = append(env, kv)
		}
	}
	return env
}

// tailBuffer keeps the last max bytes written to it (both output streams
// write to it, from the two goroutines exec starts, hence the lock).
type tailBuffer struct {
	mu        sync.Mutex
	buf       []byte
	max       int
	truncated bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.truncated = true
	}
	return len(p), nil
}

// String is the tail, trimmed, with "…" in front when output was cut (at a
// line start when there is one).
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if t.truncated {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	s := string(bytes.TrimSpace(b))
	if t.truncated && s != "" {
		s = "…\n" + s
	}
	return strings.ToValidUTF8(s, "")
}

// shorten cuts s to at most n bytes (on a UTF-8 boundary), marking the cut.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
