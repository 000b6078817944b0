package cli_test

// The CLI through the real binary (built once per test run) against a
// running broker (brokertest: api.New with a feed hub over real PostgreSQL).

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/brokkr/brokkr/brokertest"
)

const wait = 30 * time.Second

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// brokkr runs the binary with BROKKR_URL and BROKKR_KEY set (url and key
// may be empty) and returns what it printed and its exit status.
func brokkr(t *testing.T, url, key, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(brokertest.Binary(t), args...)
	cmd.Env = append(os.Environ(), "BROKKR_URL="+url, "BROKKR_KEY="+key, "BROKKR_LOG_LEVEL=", "BROKKR_LOG_FORMAT=")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return r
}

// ok runs the binary and fails the test unless it exits 0.
func ok(t *testing.T, b *brokertest.Broker, key string, args ...string) string {
	t.Helper()
	r := brokkr(t, b.URL, key, "", args...)
	if r.code != 0 {
		t.Fatalf("brokkr %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// okJSON runs the binary with -o json and decodes what it printed.
func okJSON(t *testing.T, b *brokertest.Broker, key string, out any, args ...string) {
	t.Helper()
	s := ok(t, b, key, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(s), out); err != nil {
		t.Fatalf("brokkr %s -o json printed what is not JSON (%v):\n%s", strings.Join(args, " "), err, s)
	}
}

// fails runs the binary, which must exit with status code and print want
// on standard error.
func fails(t *testing.T, b *brokertest.Broker, key string, code int, want string, args ...string) result {
	t.Helper()
	url := ""
	if b != nil {
		url = b.URL
	}
	r := brokkr(t, url, key, "", args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		t.Fatalf("brokkr %s: exit %d, stderr %q; want exit %d and %q", strings.Join(args, " "), r.code, r.stderr, code, want)
	}
	return r
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

const (
	cmA = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n"
	cmB = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"
	cmC = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c"
)

// latestContent is the stack's latest object's content and sequence.
func latestContent(t *testing.T, b *brokertest.Broker, stackID string) (string, int64, int) {
	t.Helper()
	d := b.GQL(t, b.AdminKey, `query($id: ID!) { stack(id: $id) { latestDeploymentObject { yamlContent sequenceId } deploymentObjects { totalCount } } }`,
		map[string]any{"id": stackID})
	seq, _ := brokertest.Dig(d, "stack", "latestDeploymentObject", "sequenceId").(float64)
	n, _ := brokertest.Dig(d, "stack", "deploymentObjects", "totalCount").(float64)
	return brokertest.Str(d, "stack", "latestDeploymentObject", "yamlContent"), int64(seq), int(n)
}

// `brokkr --help` and `brokkr help CMD` list the commands, flags and
// environment variables, and exit 0.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"serve", "migrate", "admin", "push", "stacks", "targets", "agents", "generators", "keys", "events", "rollback", "agent", "DATABASE_URL", "BROKKR_URL", "BROKKR_KEY", "--no-migrate"}},
		{[]string{"help", "push"}, []string{"--stack", "--create", "--generator", "-o, --output", "BROKKR_URL", "BROKKR_KEY", "push says so"}},
		{[]string{"help", "agent", "run"}, []string{"--applier", "--dir", "--command", "--kubeconfig", "--state", "--heartbeat", "BROKKR_KEY", "DEPLOY"}},
		{[]string{"help", "serve"}, []string{"--no-migrate", "BROKKR_LISTEN", "DATABASE_URL"}},
		{[]string{"stacks", "--help"}, []string{"list", "create", "delete", "labels", "annotations", "history"}},
	} {
		r := brokkr(t, "", "", "", tc.args...)
		if r.code != 0 {
			t.Errorf("brokkr %v: exit %d: %s", tc.args, r.code, r.stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(strings.ToLower(r.stdout), strings.ToLower(w)) {
				t.Errorf("brokkr %v does not mention %q:\n%s", tc.args, w, r.stdout)
			}
		}
	}
	fails(t, nil, "", 2, `unknown command "bogus"`, "bogus")
	fails(t, nil, "", 2, "BROKKR_KEY", "stacks", "list")
	fails(t, nil, "x", 2, "unknown flag", "push", "--nope", "f.yaml")
}

// push: one object from the files (a directory's YAML files recursively,
// sorted by path, joined with ---), --create makes the stack, the sequence
// id is printed; the same content again publishes nothing and says so,
// exiting 0; -o json says which.
func TestPush(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	_, gen := b.NewGenerator(t, "ci")
	dir := t.TempDir()
	write(t, filepath.Join(dir, "m", "z.yaml"), cmA)
	write(t, filepath.Join(dir, "m", "a", "b.yml"), cmB)
	write(t, filepath.Join(dir, "m", "README.md"), "not yaml: [")
	write(t, filepath.Join(dir, "m", ".hidden", "x.yaml"), "not: [valid")
	write(t, filepath.Join(dir, "extra.yaml"), cmC)

	out := ok(t, b, gen, "push", "--stack", "web", "--create", filepath.Join(dir, "m"), filepath.Join(dir, "extra.yaml"))
	if !strings.Contains(out, "Created stack web") || !strings.Contains(out, "Published stack web: sequence ") {
		t.Fatalf("push --create printed:\n%s", out)
	}
	var stacks []struct{ ID, Name string }
	okJSON(t, b, gen, &stacks, "stacks", "list")
	if len(stacks) != 1 || stacks[0].Name != "web" {
		t.Fatalf("stacks after push --create: %+v", stacks)
	}
	content, seq, n := latestContent(t, b, stacks[0].ID)
	if want := cmB + "---\n" + cmA + "---\n" + cmC + "\n"; content != want || n != 1 {
		t.Fatalf("published %d objects, content:\n%q\nwant:\n%q", n, content, want)
	}
	if !strings.Contains(out, "sequence "+itoa(seq)) {
		t.Fatalf("push printed %q, not the sequence %d", out, seq)
	}

	var again struct {
		Published  bool
		SequenceID int64
		Stack      struct{ Name string }
	}
	okJSON(t, b, gen, &again, "push", "--stack", "web", filepath.Join(dir, "m"), filepath.Join(dir, "extra.yaml"))
	if again.Published || again.SequenceID != seq || again.Stack.Name != "web" {
		t.Fatalf("the same content again: %+v, want not published, sequence %d", again, seq)
	}
	if out := ok(t, b, gen, "push", "--stack", "web", filepath.Join(dir, "m"), filepath.Join(dir, "extra.yaml")); !strings.Contains(out, "Unchanged") {
		t.Fatalf("the same content again printed:\n%s", out)
	}
	if _, _, n := latestContent(t, b, stacks[0].ID); n != 1 {
		t.Fatalf("unchanged pushes published: %d objects", n)
	}

	// Standard input, as a pipe from a template tool would give it.
	r := brokkr(t, b.URL, gen, cmB, "push", "--stack", "web", "-", "-o", "json")
	var piped struct {
		Published  bool
		SequenceID int64
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &piped) != nil || !piped.Published || piped.SequenceID <= seq {
		t.Fatalf("push from standard input: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	if content, _, _ := latestContent(t, b, stacks[0].ID); content != cmB {
		t.Fatalf("content from standard input %q", content)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// push checks the files before sending anything: a document that is not a
// Kubernetes object is refused, naming the file, and nothing is created;
// --validate yaml accepts any YAML. A missing stack without --create is
// NOT_FOUND; an admin must name the generator.
func TestPushRefusals(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	_, gen := b.NewGenerator(t, "ci")
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	write(t, bad, "apiVersion: v1\nmetadata:\n  name: x\n")
	fails(t, b, gen, 1, "bad.yaml: document 1: kind is missing", "push", "--stack", "web", "--create", bad)
	dup := filepath.Join(dir, "dup.yaml")
	write(t, dup, cmA)
	fails(t, b, gen, 1, "is also document", "push", "--stack", "web", "--create", dup, dup)
	if d := b.GQL(t, gen, `{ stacks { totalCount } }`, nil); brokertest.Str(d, "stacks", "totalCount") != "0" {
		t.Fatalf("a refused push created a stack: %v", d)
	}
	plain := filepath.Join(dir, "plain.yaml")
	write(t, plain, "name: one\nreplicas: 2\n")
	ok(t, b, gen, "push", "--stack", "tool", "--create", "--validate", "yaml", plain)
	fails(t, b, gen, 1, "NOT_FOUND", "push", "--stack", "missing", plain, "--validate", "yaml")
	fails(t, b, b.AdminKey, 2, "--generator", "push", "--stack", "new", "--create", dup)
	out := ok(t, b, b.AdminKey, "push", "--stack", "new", "--create", "--generator", "ci", dup)
	if !strings.Contains(out, "Published stack new") {
		t.Fatalf("admin push with --generator:\n%s", out)
	}
	fails(t, b, gen, 2, "--validate must be", "push", "--stack", "tool", "--validate", "xml", plain)
}

// stacks: create with labels and annotations, list (by label), labels and
// annotations edited, history, delete (a deletion marker).
func TestStacks(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	_, gen := b.NewGenerator(t, "ci")
	ok(t, b, gen, "stacks", "create", "api", "--label", "tier-a", "--annotation", "team=core")
	ok(t, b, gen, "stacks", "create", "db")
	type stack struct {
		ID, Name    string
		Labels      []string
		Annotations []struct{ Key, Value string }
	}
	var list []stack
	okJSON(t, b, gen, &list, "stacks", "list", "--label", "tier-a")
	if len(list) != 1 || list[0].Name != "api" || list[0].Annotations[0].Value != "core" {
		t.Fatalf("stacks list --label tier-a: %+v", list)
	}
	var edited stack
	okJSON(t, b, gen, &edited, "stacks", "labels", "add", "db", "x", "y")
	okJSON(t, b, gen, &edited, "stacks", "labels", "remove", "db", "x")
	okJSON(t, b, gen, &edited, "stacks", "annotations", "set", "db", "owner=me", "tier=2")
	okJSON(t, b, gen, &edited, "stacks", "annotations", "remove", "db", "tier")
	if len(edited.Labels) != 1 || edited.Labels[0] != "y" || len(edited.Annotations) != 1 || edited.Annotations[0].Key != "owner" {
		t.Fatalf("after the edits: %+v", edited)
	}
	table := ok(t, b, gen, "stacks", "list")
	for _, w := range []string{"NAME", "api", "db", "tier-a", "team=core", "owner=me"} {
		if !strings.Contains(table, w) {
			t.Fatalf("stacks list does not show %q:\n%s", w, table)
		}
	}
	b.Push(t, gen, edited.ID, cmA)
	var history []struct {
		SequenceID       int64
		IsDeletionMarker bool
	}
	okJSON(t, b, gen, &history, "stacks", "history", "db")
	if len(history) != 1 {
		t.Fatalf("history: %+v", history)
	}
	out := ok(t, b, gen, "stacks", "delete", "db")
	if !strings.Contains(out, "deletion marker at sequence") {
		t.Fatalf("stacks delete printed:\n%s", out)
	}
	fails(t, b, gen, 1, "NOT_FOUND", "stacks", "delete", "db")
	fails(t, b, gen, 2, "KEY=VALUE", "stacks", "annotations", "set", "api", "novalue")
}

// The whole flow by its commands: generators and agents (keys shown once),
// activation, targets, rollback, events (tail and live), key rotation.
func TestGeneratorsAgentsTargetsRollbackEvents(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	gen, agentKey, agentID := adminSetsUp(t, b)
	pushTargetAndRollBack(t, b, gen, agentID)
	events(t, b, gen, agentKey)

	// Rotation: the generator's own key; the admin rotates the agent's.
	var rot struct{ APIKey string }
	okJSON(t, b, gen, &rot, "keys", "rotate")
	fails(t, b, gen, 1, "UNAUTHENTICATED", "stacks", "list")
	ok(t, b, rot.APIKey, "stacks", "list")
	okJSON(t, b, b.AdminKey, &rot, "keys", "rotate", "--agent", agentID)
	if r := b.Do(t, agentKey, `{ viewer { role } }`, nil); len(r.Errors) == 0 {
		t.Fatal("the agent's old key still works after keys rotate --agent")
	}
	var self struct{ Kind, APIKey string }
	okJSON(t, b, b.AdminKey, &self, "keys", "rotate")
	if self.Kind != "admin" {
		t.Fatalf("the admin's keys rotate: %+v", self)
	}
	fails(t, b, b.AdminKey, 1, "UNAUTHENTICATED", "agents", "list")
	ok(t, b, self.APIKey, "agents", "list")
}

// adminSetsUp creates a generator and two agents, activates one (by name),
// and lists them; it returns the generator's key and the active agent's.
func adminSetsUp(t *testing.T, b *brokertest.Broker) (gen, agentKey, agentID string) {
	t.Helper()
	admin := b.AdminKey
	var g struct {
		APIKey    string `json:"apiKey"`
		Generator struct{ ID, Name string }
	}
	okJSON(t, b, admin, &g, "generators", "create", "ci", "--rate-limit", "1000")
	var a struct {
		APIKey string `json:"apiKey"`
		Agent  struct{ ID, Status string }
	}
	okJSON(t, b, admin, &a, "agents", "create", "--name", "edge", "--cluster", "c1")
	if !strings.HasPrefix(g.APIKey, "brokkr_") || !strings.HasPrefix(a.APIKey, "brokkr_") || a.Agent.Status != "INACTIVE" {
		t.Fatalf("created %+v and %+v", g, a)
	}
	human := ok(t, b, admin, "agents", "create", "--name", "other", "--cluster", "c2")
	if !strings.Contains(human, "key: brokkr_") || !strings.Contains(human, "shown only this once") {
		t.Fatalf("agents create printed:\n%s", human)
	}
	ok(t, b, admin, "agents", "activate", "edge") // by name
	var agents []struct{ Name, Status string }
	okJSON(t, b, admin, &agents, "agents", "list", "--status", "ACTIVE")
	if len(agents) != 1 || agents[0].Name != "edge" {
		t.Fatalf("active agents: %+v", agents)
	}
	var gens []struct{ Name string }
	okJSON(t, b, admin, &gens, "generators", "list")
	if len(gens) != 1 || gens[0].Name != "ci" {
		t.Fatalf("generators: %+v", gens)
	}
	return g.APIKey, a.APIKey, a.Agent.ID
}

// pushTargetAndRollBack pushes twice, targets the agent, and rolls back to
// the first push.
func pushTargetAndRollBack(t *testing.T, b *brokertest.Broker, gen, agentID string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "m.yaml")
	write(t, f, cmA)
	var first, second struct{ SequenceID int64 }
	okJSON(t, b, gen, &first, "push", "--stack", "web", "--create", f)
	write(t, f, cmB)
	okJSON(t, b, gen, &second, "push", "--stack", "web", f)
	ok(t, b, gen, "targets", "add", "--stack", "web", "--agent", agentID)
	var targets []struct {
		Agent struct{ ID string }
		Stack struct{ Name string }
	}
	okJSON(t, b, gen, &targets, "targets", "list", "--stack", "web")
	if len(targets) != 1 || targets[0].Agent.ID != agentID {
		t.Fatalf("targets: %+v", targets)
	}
	var rolled struct{ SequenceID int64 }
	okJSON(t, b, gen, &rolled, "rollback", "--stack", "web", "--to", itoa(first.SequenceID))
	stackID := brokertest.Str(b.GQL(t, gen, `{ stacks { nodes { id } } }`, nil), "stacks", "nodes", 0, "id")
	if content, seq, _ := latestContent(t, b, stackID); content != cmA || seq != rolled.SequenceID || seq <= second.SequenceID {
		t.Fatalf("after rollback to %d: sequence %d (printed %d) content %q", first.SequenceID, seq, rolled.SequenceID, content)
	}
	fails(t, b, gen, 1, "NOT_FOUND", "rollback", "--stack", "web", "--to", "999999")
}

// events: the agent reports on its object; the tail shows it to the admin
// and the generator, and --follow shows a new one live.
func events(t *testing.T, b *brokertest.Broker, gen, agentKey string) {
	t.Helper()
	objID := brokertest.Str(b.GQL(t, agentKey, `{ viewer { agent { desiredState { id } } } }`, nil), "viewer", "agent", "desiredState", 0, "id")
	report := func(status string) {
		b.GQL(t, agentKey, `mutation($o: ID!, $s: String!) { reportAgentEvent(input: {deploymentObjectId: $o, eventType: "DEPLOY", status: $s, message: "m"}) { id } }`,
			map[string]any{"o": objID, "s": status})
	}
	report("SUCCESS")
	tail := ok(t, b, b.AdminKey, "events")
	for _, w := range []string{"DEPLOY", "SUCCESS", "edge", "web"} {
		if !strings.Contains(tail, w) {
			t.Fatalf("events does not show %q:\n%s", w, tail)
		}
	}
	var evs []struct {
		EventType, Status string
		Agent             struct{ Name string }
	}
	okJSON(t, b, gen, &evs, "events", "--stack", "web", "--status", "SUCCESS")
	if len(evs) != 1 || evs[0].Agent.Name != "edge" {
		t.Fatalf("events as the generator: %+v", evs)
	}
	followEvents(t, b, b.AdminKey, report)
}

// followEvents runs `events --follow -o json`, reports an event, reads it
// as a JSON line, and interrupts the command, which exits 0.
func followEvents(t *testing.T, b *brokertest.Broker, key string, report func(string)) {
	t.Helper()
	cmd := exec.Command(brokertest.Binary(t), "events", "--follow", "--limit", "0", "--status", "FAILURE", "-o", "json")
	cmd.Env = append(os.Environ(), "BROKKR_URL="+b.URL, "BROKKR_KEY="+key)
	var mu sync.Mutex
	var out bytes.Buffer
	cmd.Stdout = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() //nolint:errcheck
	deadline := time.Now().Add(wait)
	for {
		// The subscription may not be running yet: report until one shows.
		report("FAILURE")
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		line, _, _ := strings.Cut(out.String(), "\n")
		mu.Unlock()
		if line != "" {
			var e struct{ EventType, Status string }
			if err := json.Unmarshal([]byte(line), &e); err != nil || e.Status != "FAILURE" {
				t.Fatalf("events --follow -o json printed %q (%v)", line, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("events --follow showed nothing")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("events --follow after SIGINT: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Errors name their code on standard error and exit 1 (2 for a usage
// mistake); with -o json they are JSON with the code.
func TestErrors(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	_, gen := b.NewGenerator(t, "ci")
	fails(t, b, "brokkr_bad_key", 1, "UNAUTHENTICATED", "stacks", "list")
	fails(t, b, gen, 1, "FORBIDDEN", "generators", "create", "x")
	fails(t, b, gen, 1, "NOT_FOUND", "stacks", "delete", "nope")
	r := fails(t, b, gen, 1, "", "agents", "create", "--name", "x", "--cluster", "y", "-o", "json")
	var e struct {
		Errors []struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(r.stderr), &e); err != nil || len(e.Errors) == 0 || e.Errors[0].Code != "FORBIDDEN" {
		t.Fatalf("-o json error: %q (%v)", r.stderr, err)
	}
	ok(t, b, gen, "stacks", "create", "dup")
	fails(t, b, gen, 1, "CONFLICT", "stacks", "create", "dup")
	fails(t, b, gen, 2, "-o must be", "stacks", "list", "-o", "yaml")
	fails(t, b, gen, 1, "connection refused", "stacks", "list", "--url", "http://127.0.0.1:1")
}

// The undoing commands: targets remove, agents deactivate, stacks delete
// --hard, generators delete (which revokes the generator's key).
func TestUndoing(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	w := b.NewWorld(t, "undo")
	ok(t, b, w.GenKey, "targets", "remove", "--stack", w.Stack, "--agent", w.AgentID)
	var targets []any
	okJSON(t, b, b.AdminKey, &targets, "targets", "list", "--agent", "undo-agent")
	if len(targets) != 0 {
		t.Fatalf("targets after remove: %v", targets)
	}
	var a struct{ Status string }
	okJSON(t, b, b.AdminKey, &a, "agents", "deactivate", w.AgentID)
	if a.Status != "INACTIVE" {
		t.Fatalf("after deactivate: %+v", a)
	}
	fails(t, b, w.GenKey, 1, "FORBIDDEN", "stacks", "delete", w.Stack, "--hard")
	ok(t, b, b.AdminKey, "stacks", "delete", w.Stack, "--hard", "--generator", "undo-gen")
	if d := b.GQL(t, b.AdminKey, `{ stacks(includeDeleted: true) { totalCount } }`, nil); brokertest.Str(d, "stacks", "totalCount") != "0" {
		t.Fatalf("a hard-deleted stack remains: %v", d)
	}
	ok(t, b, b.AdminKey, "generators", "delete", "undo-gen")
	var gens []any
	okJSON(t, b, b.AdminKey, &gens, "generators", "list")
	if len(gens) != 0 {
		t.Fatalf("generators after delete: %v", gens)
	}
	fails(t, b, w.GenKey, 1, "UNAUTHENTICATED", "stacks", "list")
}
