package applier

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newExec(t *testing.T, command string, timeout time.Duration) (*Exec, string) {
	t.Helper()
	dir := t.TempDir()
	e, err := NewExec(command, ExecOptions{Timeout: timeout, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return e, dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestExecPassesTheObjectOnStdinAndInTheEnvironment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The command records what it got, per sequence id.
	e, dir := newExec(t, `cat > "in-$BROKKR_SEQUENCE_ID"; env | grep '^BROKKR_' | sort > "env-$BROKKR_SEQUENCE_ID"`, 0)
	objects := []Object{
		{StackID: "3f6c", StackName: "team a/web", SequenceID: 41, YAML: "apiVersion: v1\nkind: ConfigMap\n"},
		{StackID: "3f6c", StackName: "team a/web", SequenceID: 42, YAML: "a: 2"},
		{StackID: "3f6c", StackName: "team a/web", SequenceID: 43, IsDeletionMarker: true},
	}
	for _, obj := range objects {
		if err := e.Apply(ctx, obj); err != nil {
			t.Fatalf("sequence %d: %v", obj.SequenceID, err)
		}
		seq := strconv.FormatInt(obj.SequenceID, 10)
		if got := readFile(t, filepath.Join(dir, "in-"+seq)); got != obj.YAML {
			t.Errorf("sequence %s: stdin was %q, want %q", seq, got, obj.YAML)
		}
		want := "BROKKR_DELETION_MARKER=" + strconv.FormatBool(obj.IsDeletionMarker) + "\n" +
			"BROKKR_SEQUENCE_ID=" + seq + "\n" +
			"BROKKR_STACK_ID=3f6c\n" +
			"BROKKR_STACK_NAME=team a/web\n"
		if got := readFile(t, filepath.Join(dir, "env-"+seq)); got != want {
			t.Errorf("sequence %s: environment\n%s\nwant\n%s", seq, got, want)
		}
	}
}

func TestExecKeepsTheAgentKeyFromTheCommand(t *testing.T) {
	// Not parallel: it sets the process environment.
	t.Setenv("BROKKR_KEY", "brokkr_agent_secret")
	t.Setenv("BROKKR_URL", "http://broker.example:8080")
	e, dir := newExec(t, `env > env.txt`, 0)
	if err := e.Apply(context.Background(), Object{StackName: "web", SequenceID: 1}); err != nil {
		t.Fatal(err)
	}
	env := readFile(t, filepath.Join(dir, "env.txt"))
	if strings.Contains(env, "brokkr_agent_secret") || !strings.Contains(env, "BROKKR_URL=http://broker.example:8080\n") {
		t.Fatalf("the command's environment:\n%s\nwant the agent's without BROKKR_KEY", env)
	}
}

func TestExecFailureCarriesTheTailOfTheOutput(t *testing.T) {
	t.Parallel()
	e, _ := newExec(t, `echo "$((6*7))-first"; i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done; echo "kubectl: error: boom" >&2; exit 3`, 0)
	err := e.Apply(context.Background(), Object{StackName: "web", SequenceID: 1, YAML: "a: 1\n"})
	if err == nil {
		t.Fatal("Apply succeeded for a command that exits 3")
	}
	msg := err.Error()
	for _, want := range []string{"exited with status 3", "line 1999", "kubectl: error: boom"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "42-first") || len(msg) > outputTail+400 {
		t.Errorf("error carries more than the tail (%d bytes):\n%.300s", len(msg), msg)
	}
	if !strings.Contains(msg, "…") {
		t.Errorf("a cut output is not marked as cut:\n%.300s", msg)
	}
	// A command that prints nothing still says what went wrong.
	e, _ = newExec(t, "exit 1", 0)
	if err := e.Apply(context.Background(), Object{StackName: "web"}); err == nil || !strings.HasSuffix(err.Error(), "exited with status 1") {
		t.Fatalf("Apply = %v", err)
	}
	if _, err := NewExec(" ", ExecOptions{}); err == nil {
		t.Fatal("NewExec with a blank command succeeded")
	}
}

// processGone reports whether pid has exited (a zombie counts as exited).
func processGone(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return strings.HasPrefix(rest, "Z")
}

func TestExecTimeoutKillsTheCommandAndWhatItStarted(t *testing.T) {
	t.Parallel()
	// The shell starts a child that would outlive a kill of the shell alone.
	e, dir := newExec(t, `sleep 300 & echo $! > child.pid; echo waiting; wait`, 300*time.Millisecond)
	start := time.Now()
	err := e.Apply(context.Background(), Object{StackName: "web", YAML: "a: 1\n"})
	if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") || !strings.Contains(err.Error(), "waiting") {
		t.Fatalf("Apply = %v, want a timeout with the output", err)
	}
	if elapsed := time.Since(start); elapsed > time.Minute {
		t.Fatalf("Apply took %s despite the 300ms timeout", elapsed)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, filepath.Join(dir, "child.pid"))))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !processGone(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the command's child %d still runs after the timeout", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestExecStopsWithTheAgent(t *testing.T) {
	t.Parallel()
	e, _ := newExec(t, "sleep 300", time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	err := e.Apply(ctx, Object{StackName: "web"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply = %v, want context.Canceled (the agent stopping is no FAILURE of the object)", err)
	}
}
