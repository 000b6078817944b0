package graphiql_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/brokkr/brokkr/graphiql"
)

func serve(t *testing.T) (*httptest.Server, *graphiql.Handler) {
	t.Helper()
	h := graphiql.New()
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", h.Page())
	mux.Handle("GET "+graphiql.Prefix, h.Assets())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, h
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// The page names only assets of this version, every one of them is served
// with its type, and nothing is refused with a policy weaker than 'self'.
func TestPageAndAssets(t *testing.T) {
	t.Parallel()
	srv, h := serve(t)
	resp, page := get(t, srv.URL+"/")
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.HasPrefix(csp, "default-src 'self';") || strings.Contains(csp, "unsafe") || strings.Contains(csp, "data:") {
		t.Fatalf("page: %d, CSP %q", resp.StatusCode, csp)
	}
	nonce := regexp.MustCompile(`'nonce-([A-Z2-7]{26})'`).FindStringSubmatch(csp)
	if nonce == nil || !strings.Contains(page, `content="`+nonce[1]+`"`) {
		t.Fatalf("the page does not carry its CSP's style nonce: %q", csp)
	}
	if resp2, _ := get(t, srv.URL+"/"); strings.Contains(resp2.Header.Get("Content-Security-Policy"), nonce[1]) {
		t.Fatal("two answers of the page share a nonce")
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") || strings.Contains(page, "{{") {
		t.Fatalf("the page names another origin or a placeholder:\n%s", page)
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) != 5 {
		t.Fatalf("the page should name 5 assets, names %v", refs)
	}
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
	for _, r := range refs {
		if !strings.HasPrefix(r[1], graphiql.Prefix+h.Version()+"/") {
			t.Errorf("asset outside this version: %s", r[1])
			continue
		}
		resp, body := get(t, srv.URL+r[1])
		ext := r[1][strings.LastIndex(r[1], "."):]
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != types[ext] || len(body) == 0 ||
			!strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || resp.Header.Get("Content-Security-Policy") != graphiql.CSP {
			t.Errorf("%s: %d %v", r[1], resp.StatusCode, resp.Header)
		}
		if ext == ".css" {
			for _, u := range regexp.MustCompile(`url\(([^)]*)\)`).FindAllStringSubmatch(body, -1) {
				if !strings.HasPrefix(u[1], "media/") {
					t.Errorf("%s loads %s, not a file of its own", r[1], u[1])
					continue
				}
				if resp, _ := get(t, srv.URL+graphiql.Prefix+h.Version()+"/"+u[1]); resp.StatusCode != 200 {
					t.Errorf("%s: %s answers %d", r[1], u[1], resp.StatusCode)
				}
			}
		}
	}
	for _, p := range []string{
		graphiql.Prefix + "000000000000/app.js", // another version
		graphiql.Prefix + h.Version() + "/",     // a directory
		graphiql.Prefix + h.Version() + "/media",
		graphiql.Prefix + h.Version() + "/nope.js",
		graphiql.Prefix + h.Version() + "/../graphiql.go",
	} {
		if resp, _ := get(t, srv.URL+p); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
}
