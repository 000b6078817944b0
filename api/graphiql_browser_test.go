package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/brokkr/brokkr/api"
)

// chromiumPath is the browser the GraphiQL test drives: $BROKKR_CHROMIUM,
// else chromium or chromium-browser on PATH. make test installs Debian's
// chromium package when none is there (scripts/ensure-chromium.sh).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BROKKR_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium: run scripts/ensure-chromium.sh (make test does), or set BROKKR_CHROMIUM")
	return ""
}

// browserWatch records what a page does on the network and what goes wrong
// in it: every request (anything not for origin is failed, so the page
// works with no network or not at all), console errors, uncaught
// exceptions and the browser's own error log (Content-Security-Policy
// refusals are reported there).
type browserWatch struct {
	origin string

	mu       sync.Mutex
	requests []string
	blocked  []string
	problems []string
}

func (b *browserWatch) add(list *[]string, s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	*list = append(*list, s)
}

func (b *browserWatch) snapshot() (requests, blocked, problems []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...), append([]string(nil), b.blocked...), append([]string(nil), b.problems...)
}

// onBroker reports whether a URL (http or ws) is on the broker.
func (b *browserWatch) onBroker(u string) bool {
	host := strings.TrimPrefix(b.origin, "http://")
	return strings.HasPrefix(u, "http://"+host+"/") || strings.HasPrefix(u, "ws://"+host+"/")
}

// watch subscribes to the tab's events before anything loads, and lets
// through only the requests for the broker.
func (b *browserWatch) watch(t *testing.T, ctx context.Context) {
	t.Helper()
	each(chromedp.Events(ctx, fetch.RequestPaused), func(ev fetch.EventRequestPaused) {
		if b.onBroker(ev.Request.URL) {
			_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
			return
		}
		b.add(&b.blocked, ev.Request.URL)
		_, _ = chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonBlockedByClient})
	})
	each(chromedp.Events(ctx, network.RequestWillBeSent), func(ev network.EventRequestWillBeSent) {
		b.add(&b.requests, ev.Request.URL)
	})
	each(chromedp.Events(ctx, network.WebSocketCreated), func(ev network.EventWebSocketCreated) {
		b.add(&b.requests, ev.URL)
		if !b.onBroker(ev.URL) {
			b.add(&b.blocked, ev.URL)
		}
	})
	each(chromedp.Events(ctx, runtime.ConsoleAPICalled), func(ev runtime.EventConsoleAPICalled) {
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			b.add(&b.problems, "console."+string(ev.Type)+": "+strings.Join(args, " "))
		}
	})
	each(chromedp.Events(ctx, runtime.ExceptionThrown), func(ev runtime.EventExceptionThrown) {
		msg := ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
		b.add(&b.problems, "exception: "+msg)
	})
	each(chromedp.Events(ctx, cdplog.EntryAdded), func(ev cdplog.EventEntryAdded) {
		if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Level == cdplog.EntryLevelWarning {
			b.add(&b.problems, fmt.Sprintf("log %s/%s: %s %s", ev.Entry.Source, ev.Entry.Level, ev.Entry.Text, ev.Entry.URL))
		}
	})
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
}

// each runs f on every event of seq, on a goroutine of its own, until the
// tab's context ends.
func each[E any](seq iter.Seq2[E, error], f func(E)) {
	go func() {
		for ev, err := range seq {
			if err != nil {
				return
			}
			f(ev)
		}
	}()
}

// startBrowser starts a headless Chromium with a fresh profile, no
// background traffic, and no name resolution (every host name fails; the
// broker is at 127.0.0.1), and returns its tab's context.
func startBrowser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(1280, 800),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	return tctx
}

// browserStep is the longest one step in the browser may take (the
// machine may be loaded: it is generous).
const browserStep = 60 * time.Second

// browse runs actions in the tab within browserStep; what names the step
// in the failure.
func browse(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, browserStep)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// editor is the JavaScript handle of one of GraphiQL's CodeMirror editors.
func editor(class string) string {
	return `document.querySelector('.` + class + ` .CodeMirror').CodeMirror`
}

// runInGraphiQL puts query, whose one operation is called name, in
// GraphiQL's editor and presses the run button once GraphiQL has read the
// edit (it parses the editor's text on a debounce, and runs the operation
// it last read).
func runInGraphiQL(t *testing.T, ctx context.Context, name, query string) {
	t.Helper()
	q, _ := json.Marshal(query)
	n, _ := json.Marshal(name)
	browse(t, ctx, "running "+name,
		chromedp.Evaluate[chromedp.Void](editor("graphiql-query-editor")+".setValue("+string(q)+")"),
		chromedp.Poll[chromedp.Void](editor("graphiql-query-editor")+".operationName === "+string(n)),
		chromedp.Click(chromedp.CSS(".graphiql-execute-button")),
	)
}

// waitForResult waits until GraphiQL's result pane shows every one of want,
// and returns what it shows.
func waitForResult(t *testing.T, ctx context.Context, want ...string) string {
	t.Helper()
	wanted, _ := json.Marshal(want)
	pred := `(() => { const e = document.querySelector('.graphiql-response .CodeMirror');
		const v = e ? e.CodeMirror.getValue() : '';
		return ` + string(wanted) + `.every(w => v.includes(w)) ? v : false; })()`
	got, err := chromedp.Run(ctx, chromedp.Poll[string](pred, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(browserStep)))
	if err != nil {
		shown, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const e = document.querySelector('.graphiql-response .CodeMirror'); return e ? e.CodeMirror.getValue() : '(no result pane)'; })()`))
		t.Fatalf("GraphiQL does not show %q: %v\nit shows:\n%s", want, err, shown)
	}
	return got
}

// GraphiQL works on a machine with no network: the page and everything it
// loads come from the broker (any other request is failed, and no host name
// resolves), nothing breaks the Content-Security-Policy, the API key entered
// once is kept in the browser and sent with queries and in the websocket's
// connection_init, and a subscription shows an object published while it
// runs.
//
// Not parallel: a browser is heavy, and the parallel tests of this package
// include some that a loaded machine slows (TestStalledWebsocketClient...).
func TestGraphiQLInBrowser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w := newWorldWith(t, func(e *env) api.Config { return api.Config{Feed: runFeed(t, ctx, e)} })

	start := time.Now()
	bctx := startBrowser(t, ctx)
	b := &browserWatch{origin: w.srv.URL}
	b.watch(t, bctx)
	browse(t, bctx, "loading the page",
		chromedp.Navigate(w.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS(".graphiql-execute-button")),
	)
	t.Logf("browser started and GraphiQL loaded in %v", time.Since(start).Round(time.Millisecond))

	// Without a key: only introspection (the schema, docs) works.
	runInGraphiQL(t, bctx, "Anonymous", `query Anonymous { viewer { role } }`)
	waitForResult(t, bctx, `"UNAUTHENTICATED"`)

	// The key, entered once, is kept in the browser across the reload.
	browse(t, bctx, "entering the key",
		chromedp.SendKeys(chromedp.ID("brokkr-key"), w.admin),
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error { // Save reloads the page
			_, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.ID("brokkr-key-save"))))
			return err
		}),
		chromedp.WaitVisible(chromedp.CSS(".graphiql-execute-button")),
		chromedp.Poll[chromedp.Void](`document.getElementById('brokkr-key-status').textContent.startsWith('Key saved')`),
	)
	stored, err := chromedp.Run(bctx, chromedp.Evaluate[string](`localStorage.getItem('brokkr.apiKey')`))
	if err != nil || stored != w.admin {
		t.Fatalf("stored key %q, %v", stored, err)
	}

	runInGraphiQL(t, bctx, "Viewer", `query Viewer { viewer { role } }`)
	waitForResult(t, bctx, `"role": "ADMIN"`)
	w.waitLogLine(t, "http request", logLine{"operation_name": "Viewer", "principal": "admin"}) // the key went as a header

	// A subscription over the websocket: the replay after 0 ends with A's
	// latest object; then an object published meanwhile appears.
	runInGraphiQL(t, bctx, "Objects", fmt.Sprintf(`subscription Objects { stackDeploymentObjects(stackId: %q, after: 0) { sequenceId yamlContent } }`, w.stackA))
	waitForResult(t, bctx, `kind: Secret`)
	w.waitLogLine(t, "websocket open", logLine{}) // the subscription went over a websocket
	w.ok(t, w.genA.key, `mutation($s: ID!, $y: String!) { createDeploymentObject(input: {stackId: $s, yamlContent: $y}) { id } }`,
		map[string]any{"s": w.stackA, "y": "kind: ConfigMap\nmetadata:\n  name: published-while-watching\n"})
	waitForResult(t, bctx, `published-while-watching`)

	// The schema's docs, and a dialog (its scroll lock inserts a <style>
	// with the page's nonce), within the policy.
	browse(t, bctx, "opening the docs and a dialog",
		chromedp.Click(chromedp.CSS(`[aria-label="Show Documentation Explorer"]`)),
		chromedp.WaitVisible(chromedp.CSS(".graphiql-doc-explorer")),
		chromedp.Click(chromedp.CSS(`[aria-label="Open settings dialog"]`)),
		chromedp.WaitVisible(chromedp.CSS(".graphiql-dialog")),
		chromedp.Poll[chromedp.Void](`document.querySelector('style[nonce]') !== null`),
	)
	t.Logf("browser part done in %v", time.Since(start).Round(time.Millisecond))

	requests, blocked, problems := b.snapshot()
	if len(blocked) > 0 {
		t.Errorf("the page asked for something other than the broker: %q", blocked)
	}
	if len(problems) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(problems, "\n"))
	}
	sawSocket := false
	for _, r := range requests {
		sawSocket = sawSocket || strings.HasPrefix(r, "ws://")
	}
	if !sawSocket || len(requests) < 5 {
		t.Errorf("requests seen: %q", requests)
	}
}
