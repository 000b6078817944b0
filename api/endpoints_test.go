package api_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/brokkr/brokkr/api"
)

func TestEndpoints(t *testing.T) {
	t.Parallel()
	e := setup(t, api.Config{})
	get := func(path string, header http.Header) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz", nil); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code, body := get("/readyz", nil); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("/readyz: %d %s", code, body)
	}
	if code, body := get("/", nil); code != 200 || !strings.Contains(strings.ToLower(body), "graphiql") {
		t.Errorf("/: %d %.200s", code, body)
	}
	// GET transport.
	q := url.Values{"query": {"{ viewer { role } }"}}
	if code, body := get("/query?"+q.Encode(), http.Header{"Authorization": {"Bearer " + e.admin}}); code != 200 || !strings.Contains(body, `"role":"ADMIN"`) {
		t.Errorf("GET /query: %d %s", code, body)
	}
	// Metrics count what was served, and the open websockets.
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	ws, _, err := websocket.Dial(wctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/query", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	code, body := get("/metrics", nil)
	if !strings.Contains(body, "brokkr_websocket_connections 1\n") {
		t.Errorf("/metrics: the open websocket is not counted\n%s", body)
	}
	if code != 200 || !strings.Contains(body, `brokkr_http_requests_total{code="200",route="/healthz"} 1`) ||
		!strings.Contains(body, `brokkr_graphql_operations_total{type="query"} 1`) || !strings.Contains(body, "brokkr_http_request_duration_seconds_bucket") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, _ := get("/nope", nil); code != 404 {
		t.Errorf("/nope: %d", code)
	}
}

func TestReadyzWithoutDatabase(t *testing.T) {
	t.Parallel()
	e := setup(t, api.Config{})
	if err := e.db.Bun.Close(); err != nil {
		t.Fatal(err)
	}
	resp, err := e.srv.Client().Get(e.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with a closed pool: %d", resp.StatusCode)
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	e := setup(t, api.Config{AllowedOrigins: []string{"dash.example.com"}})
	preflight := func(origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, e.srv.URL+"/query", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := preflight("https://dash.example.com"); r.Header.Get("Access-Control-Allow-Origin") != "https://dash.example.com" ||
		!strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("allowed origin preflight: %d %v", r.StatusCode, r.Header)
	}
	if r := preflight("https://evil.example.org"); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("foreign origin got CORS headers: %v", r.Header)
	}
}
