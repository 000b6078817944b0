package client_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/brokertest"
	"github.com/brokkr/brokkr/client"
)

const wait = 30 * time.Second

// logBuffer collects a client's log for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newClient(t *testing.T, b *brokertest.Broker, key string, logs *logBuffer) *client.Client {
	t.Helper()
	opts := client.Options{MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}
	if logs != nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := client.New(b.URL, key, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The generated functions work through a Client: mutations and queries
// with the key, and the broker's errors come back with their codes.
func TestQueriesMutationsAndErrorCodes(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	ctx := context.Background()
	admin := newClient(t, b, b.AdminKey, nil)
	g, err := client.CreateGenerator(ctx, admin, "ci", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if g.CreateGenerator == nil || !strings.HasPrefix(g.CreateGenerator.ApiKey, "brokkr_") {
		t.Fatalf("createGenerator: %+v", g.CreateGenerator)
	}
	gen := newClient(t, b, g.CreateGenerator.ApiKey, nil)
	v, err := client.Viewer(ctx, gen)
	if err != nil || v.Viewer.Role != client.RoleGenerator || v.Viewer.Generator == nil || v.Viewer.Generator.Name != "ci" {
		t.Fatalf("viewer: %+v, %v", v, err)
	}
	s, err := client.CreateStack(ctx, gen, nil, "web", nil, []string{"tier-a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := client.CreateDeploymentObject(ctx, gen, s.CreateStack.Id, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")
	if err != nil || obj.CreateDeploymentObject == nil || obj.CreateDeploymentObject.SequenceId <= 0 {
		t.Fatalf("createDeploymentObject: %+v, %v", obj, err)
	}
	list, err := client.Stacks(ctx, gen, nil, nil, &client.StackFilter{Labels: []string{"tier-a"}})
	if err != nil || list.Stacks.TotalCount != 1 {
		t.Fatalf("stacks: %+v, %v", list, err)
	}
	latest := list.Stacks.Nodes[0].LatestDeploymentObject
	if latest == nil || latest.YamlChecksum != obj.CreateDeploymentObject.YamlChecksum {
		t.Fatalf("latest object %+v, want checksum %s", latest, obj.CreateDeploymentObject.YamlChecksum)
	}

	for _, tc := range []struct {
		name string
		do   func() error
		code string
	}{
		{"a stack that is not there", func() error {
			_, err := client.AddStackLabel(ctx, gen, "00000000-0000-0000-0000-000000000001", "x")
			return err
		}, client.CodeNotFound},
		{"YAML that does not parse", func() error {
			_, err := client.CreateDeploymentObject(ctx, gen, s.CreateStack.Id, "a: [")
			return err
		}, client.CodeBadUserInput},
		{"an admin-only mutation", func() error {
			_, err := client.CreateGenerator(ctx, gen, "other", nil, nil)
			return err
		}, client.CodeForbidden},
		{"a bad key", func() error {
			_, err := client.Viewer(ctx, newClient(t, b, "brokkr_nope_nope", nil))
			return err
		}, client.CodeUnauthenticated},
		{"a duplicate name", func() error {
			_, err := client.CreateStack(ctx, gen, nil, "web", nil, nil, nil)
			return err
		}, client.CodeConflict},
	} {
		err := tc.do()
		if got := client.ErrorCode(err); got != tc.code {
			t.Errorf("%s: code %q (%v), want %s", tc.name, got, err, tc.code)
		}
		if d := client.Describe(err); !strings.HasPrefix(d, tc.code+": ") {
			t.Errorf("%s: Describe = %q", tc.name, d)
		}
	}
}

// A request refused with RATE_LIMITED is sent again once retryAfter has
// passed, and succeeds; with retries off the caller gets the code and the
// hint.
func TestRateLimitedRequestsAreRetriedAfterTheHint(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	ctx := context.Background()
	d := b.GQL(t, b.AdminKey, `mutation { createGenerator(input: {name: "slow", rateLimitPerMinute: 60}) { apiKey } }`, nil)
	key := brokertest.Str(d, "createGenerator", "apiKey")
	once, err := client.New(b.URL, key, client.Options{MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	var limited error
	for i := 0; i < 200 && limited == nil; i++ { // a burst of 60, then refused
		_, limited = client.Viewer(ctx, once)
	}
	if client.ErrorCode(limited) != client.CodeRateLimited {
		t.Fatalf("200 requests on a budget of 60 per minute: %v", limited)
	}
	hint, ok := client.RetryAfter(limited)
	if !ok || hint <= 0 {
		t.Fatalf("RATE_LIMITED without retryAfter: %v", limited)
	}

	logs := &logBuffer{}
	retrying := newClient(t, b, key, logs)
	start := time.Now()
	if _, err := client.Viewer(ctx, retrying); err != nil {
		t.Fatalf("with retries: %v", err)
	}
	if took := time.Since(start); took < hint-50*time.Millisecond {
		t.Fatalf("retried after %v, before the hint %v", took, hint)
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Fatalf("no retry logged:\n%s", logs)
	}
}

// feedCollector runs FollowAgentFeed and hands over what it delivers.
type feedCollector struct {
	objs chan client.FeedObject
	done chan error
}

func follow(ctx context.Context, c *client.Client, after *int64) *feedCollector {
	f := &feedCollector{objs: make(chan client.FeedObject, 100), done: make(chan error, 1)}
	go func() {
		f.done <- c.FollowAgentFeed(ctx, after, func(_ context.Context, o *client.FeedObject) error {
			f.objs <- *o
			return nil
		})
	}()
	return f
}

// next is the next object delivered, or fails the test.
func (f *feedCollector) next(t *testing.T) client.FeedObject {
	t.Helper()
	select {
	case o := <-f.objs:
		return o
	case err := <-f.done:
		t.Fatalf("FollowAgentFeed ended: %v", err)
	case <-time.After(wait):
		t.Fatal("no object within", wait)
	}
	return client.FeedObject{}
}

func (f *feedCollector) expect(t *testing.T, seqs ...int64) {
	t.Helper()
	for _, want := range seqs {
		if got := f.next(t); got.SequenceId != want {
			t.Fatalf("delivered sequence %d, want %d", got.SequenceId, want)
		}
	}
}

// ended is FollowAgentFeed's result.
func (f *feedCollector) ended(t *testing.T) error {
	t.Helper()
	select {
	case err := <-f.done:
		return err
	case <-time.After(wait):
		t.Fatal("FollowAgentFeed did not end within", wait)
	}
	return nil
}

// The agent feed follows across a broker restart: the websocket closed with
// 1012 is reopened and the feed resumes after the last object handled, so
// the objects pushed while it was away come once each, in order, and live
// ones after them; the stack comes with every object.
func TestFollowAgentFeedResumesAcrossARestart(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	w := b.NewWorld(t, "restart")
	logs := &logBuffer{}
	c := newClient(t, b, w.AgentKey, logs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	s1 := b.Push(t, w.GenKey, w.StackID, "n: 1\n")
	f := follow(ctx, c, nil) // the desired state first: s1
	first := f.next(t)
	if first.SequenceId != s1 || first.Stack.Id != w.StackID || first.Stack.Name != w.Stack || first.YamlContent != "n: 1\n" {
		t.Fatalf("first object %+v, want sequence %d of stack %s", first, s1, w.Stack)
	}
	s2 := b.Push(t, w.GenKey, w.StackID, "n: 2\n")
	f.expect(t, s2)

	b.Restart()
	s3 := b.Push(t, w.GenKey, w.StackID, "n: 3\n")
	s4 := b.Push(t, w.GenKey, w.StackID, "n: 4\n")
	f.expect(t, s3, s4)
	s5 := b.Push(t, w.GenKey, w.StackID, "n: 5\n")
	f.expect(t, s5)
	select {
	case o := <-f.objs:
		t.Fatalf("an extra object after the restart: %+v", o)
	default:
	}
	if !strings.Contains(logs.String(), "reconnecting") || !strings.Contains(logs.String(), "1012") {
		t.Fatalf("the restart was not seen as a 1012 close:\n%s", logs)
	}
	cancel()
	if err := f.ended(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("after cancel: %v", err)
	}
}

// A feed resumed with after replays what came after it and nothing before.
func TestFollowAgentFeedWithAfterReplays(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	w := b.NewWorld(t, "after")
	s1 := b.Push(t, w.GenKey, w.StackID, "n: 1\n")
	s2 := b.Push(t, w.GenKey, w.StackID, "n: 2\n")
	s3 := b.Push(t, w.GenKey, w.StackID, "n: 3\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := follow(ctx, newClient(t, b, w.AgentKey, nil), &s1)
	f.expect(t, s2, s3)
}

// The broker's keep-alive pings are answered and do not end the
// subscription (genqlient's own websocket client stops at the first one).
func TestFollowSurvivesKeepAlivePings(t *testing.T) {
	t.Parallel()
	b := brokertest.StartWith(t, func(c *api.Config) { c.KeepAlive = 20 * time.Millisecond })
	w := b.NewWorld(t, "pings")
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := follow(ctx, newClient(t, b, w.AgentKey, logs), nil)
	s1 := b.Push(t, w.GenKey, w.StackID, "n: 1\n")
	f.expect(t, s1)
	time.Sleep(500 * time.Millisecond) // some 25 pings
	s2 := b.Push(t, w.GenKey, w.StackID, "n: 2\n")
	f.expect(t, s2)
	if strings.Contains(logs.String(), "reconnecting") {
		t.Fatalf("the subscription was interrupted:\n%s", logs)
	}
}

// A key refused with 4401 (rotated while following) ends the follow with
// ErrUnauthenticated instead of reconnecting forever; a key that is not an
// agent's ends it with the broker's FORBIDDEN.
func TestFollowStopsWhenRetryingCannotHelp(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	w := b.NewWorld(t, "stop")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := follow(ctx, newClient(t, b, w.AgentKey, nil), nil)
	s1 := b.Push(t, w.GenKey, w.StackID, "n: 1\n")
	f.expect(t, s1)
	b.GQL(t, b.AdminKey, `mutation($id: ID!) { rotateAgentKey(id: $id) { apiKey } }`, map[string]any{"id": w.AgentID})
	if err := f.ended(t); !errors.Is(err, client.ErrUnauthenticated) {
		t.Fatalf("after the key's rotation: %v, want ErrUnauthenticated", err)
	}

	g := follow(ctx, newClient(t, b, w.GenKey, nil), nil)
	err := g.ended(t)
	var se *client.SubscriptionError
	if !errors.As(err, &se) || client.ErrorCode(err) != client.CodeForbidden {
		t.Fatalf("a generator following an agent feed: %v, want a FORBIDDEN SubscriptionError", err)
	}
}

// A handler's error ends the follow with that error; the object it failed
// on is not counted as handled (a new follow from the same cursor gets it).
func TestFollowReturnsTheHandlersError(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	w := b.NewWorld(t, "handler")
	s1 := b.Push(t, w.GenKey, w.StackID, "n: 1\n")
	c := newClient(t, b, w.AgentKey, nil)
	boom := errors.New("boom")
	err := c.FollowAgentFeed(context.Background(), nil, func(context.Context, *client.FeedObject) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("FollowAgentFeed = %v, want the handler's error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	follow(ctx, c, nil).expect(t, s1)
}

// 1013 (too many websockets for the key) is retried with backoff until a
// connection is free.
func TestFollowRetriesTryAgainLater(t *testing.T) {
	t.Parallel()
	b := brokertest.StartWith(t, func(c *api.Config) { c.MaxWebsocketsPerKey = 1 })
	w := b.NewWorld(t, "busy")
	c := newClient(t, b, w.AgentKey, nil)
	hog := c.WebSocket()
	if _, err := hog.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := follow(ctx, newClient(t, b, w.AgentKey, logs), nil)
	deadline := time.Now().Add(wait)
	for !strings.Contains(logs.String(), "1013") {
		if time.Now().After(deadline) {
			t.Fatalf("no 1013 refusal seen:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	hog.Close()
	s1 := b.Push(t, w.GenKey, w.StackID, "n: 1\n")
	f.expect(t, s1)
}

// The agentEvents subscription through FollowAgentEvents sees a reported
// event, with its agent and object.
func TestFollowAgentEvents(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t)
	w := b.NewWorld(t, "events")
	s1 := b.Push(t, w.GenKey, w.StackID, "n: 1\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan client.Event, 10)
	go func() {
		_ = newClient(t, b, b.AdminKey, nil).FollowAgentEvents(ctx, nil, func(_ context.Context, e *client.Event) error {
			events <- *e
			return nil
		})
	}()
	agent := newClient(t, b, w.AgentKey, nil)
	feed := follow(ctx, agent, nil)
	obj := feed.next(t)
	msg := "applied"
	// The subscription may not be running yet: report until an event shows.
	deadline := time.After(wait)
	for {
		if _, err := client.ReportAgentEvent(ctx, agent, obj.Id, "DEPLOY", "SUCCESS", &msg); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-events:
			if e.EventType != "DEPLOY" || e.Status != "SUCCESS" || e.Agent.Id != w.AgentID || e.DeploymentObject.SequenceId != s1 ||
				e.DeploymentObject.Stack.Name != w.Stack {
				t.Fatalf("event %+v", e)
			}
			return
		case <-time.After(500 * time.Millisecond):
		case <-deadline:
			t.Fatal("no event delivered")
		}
	}
}
