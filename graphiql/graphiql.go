// Package graphiql serves Brokkr's GraphiQL page and everything it loads
// from the binary itself, so that it works on a machine with no network: the
// page (page.html) at "/", and its assets (assets/: app.js and app.css, the
// page's own code; vendor.js and vendor.css, GraphiQL 3 with React 18 and
// graphql-ws bundled by scripts/build-graphiql.sh; media/, the fonts and
// images of vendor.css) under "/graphiql/<version>/", where version is a hash
// of the assets, so that browsers may cache them for good.
//
// Every answer carries a Content-Security-Policy that allows nothing but the
// broker itself ('self'): no CDN, no inline script, no data: URL. The one
// exception is for styles: GraphiQL's dialogs (Radix, through
// react-style-singleton) insert a <style> element while they are open, so
// the page's policy also allows styles carrying the nonce that this answer
// of the page makes and hands to app.js (a meta element); app.js gives it to
// the bundle as __webpack_nonce__, which react-style-singleton reads (through
// get-nonce). Nothing from outside the broker gets in either way.
package graphiql

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"
)

// CSP is the Content-Security-Policy of the assets, and of the page with
// its style nonce added (pageCSP).
const CSP = "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'; object-src 'none'"

func pageCSP(nonce string) string {
	return CSP + "; style-src 'self' 'nonce-" + nonce + "'"
}

// Prefix is where the assets are served: Prefix + version + "/" + name.
const Prefix = "/graphiql/"

var (
	//go:embed page.html
	pageHTML []byte
	//go:embed assets
	embedded embed.FS
)

// contentTypes are the types of the assets' extensions, set explicitly
// (Go's own table lacks the fonts; the system's may lack anything).
var contentTypes = map[string]string{
	".js":    "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".txt":   "text/plain; charset=utf-8",
	".woff2": "font/woff2",
	".woff":  "font/woff",
	".png":   "image/png",
	".svg":   "image/svg+xml",
}

// Handler serves the page and its assets.
type Handler struct {
	page    []byte
	version string
	files   fs.FS
}

// New builds the handler: it hashes the embedded assets into the version
// the page names.
func New() *Handler {
	files, err := fs.Sub(embedded, "assets")
	if err != nil { // the embed pattern guarantees the directory
		panic(err)
	}
	version := hashFiles(files)
	return &Handler{
		page:    bytes.ReplaceAll(pageHTML, []byte("{{BASE}}"), []byte(strings.TrimSuffix(Prefix, "/")+"/"+version)),
		version: version,
		files:   files,
	}
}

// Version is the hash of the assets, part of their paths.
func (h *Handler) Version() string { return h.version }

// hashFiles is the first 12 hex digits of a SHA-256 over every file's name
// and content, in name order.
func hashFiles(files fs.FS) string {
	var names []string
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return err
	})
	sort.Strings(names)
	sum := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(files, n)
		if err != nil {
			panic(err)
		}
		sum.Write([]byte(n))
		sum.Write([]byte{0})
		sum.Write(b)
	}
	return hex.EncodeToString(sum.Sum(nil))[:12]
}

func secure(w http.ResponseWriter, csp string) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// Page serves the GraphiQL page (mount it at "GET /{$}"), with a fresh
// style nonce each time. It is not cached: it names the assets of this
// broker's version, and its nonce is good for one answer.
func (h *Handler) Page() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nonce := rand.Text() // 26 base32 characters, 130 random bits
		secure(w, pageCSP(nonce))
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		page := bytes.ReplaceAll(h.page, []byte("{{NONCE}}"), []byte(nonce))
		http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(page))
	})
}

// Assets serves the files under Prefix + version + "/" (mount it at
// "GET " + Prefix). Another version, a directory or a missing file is 404.
func (h *Handler) Assets() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secure(w, CSP)
		version, name, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, Prefix), "/")
		if !ok || version != h.version || name == "" || !fs.ValidPath(name) {
			http.NotFound(w, r)
			return
		}
		b, err := fs.ReadFile(h.files, name)
		if err != nil { // missing, or a directory
			http.NotFound(w, r)
			return
		}
		if ct, ok := contentTypes[path.Ext(name)]; ok {
			w.Header().Set("Content-Type", ct)
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
	})
}
