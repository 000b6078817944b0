package wstransport_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/brokkr/brokkr/api"
	"github.com/brokkr/brokkr/feed"
	"github.com/brokkr/brokkr/wstransport"
)

// cutProxy forwards TCP connections to PostgreSQL until cut: then it closes
// the open ones and refuses new ones, until restored.
type cutProxy struct {
	url   string
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func newCutProxy(t *testing.T, dbURL string) *cutProxy {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Host = ln.Addr().String()
	p := &cutProxy{url: u.String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); p.setCut(true); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { p.serve(c, target) })
		}
	})
	return p
}

func (p *cutProxy) serve(c net.Conn, target string) {
	s, err := net.Dial("tcp", target)
	p.mu.Lock()
	if err != nil || p.cut {
		p.mu.Unlock()
		c.Close()
		if s != nil {
			s.Close()
		}
		return
	}
	p.conns = append(p.conns, c, s)
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
	<-done
	c.Close()
	s.Close()
	<-done
}

// setCut cuts (closing every open connection) or restores the proxy.
func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// readyz is /readyz's status.
func (e *env) readyz(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(e.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (e *env) waitReadyz(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for e.readyz(t) != want {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered %d", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A key rotated while the feed's listener was not listening (its
// connection lost, and not yet back) sends a notification nobody hears:
// once the listener is back, every open websocket's key is checked again
// (Feed.Options.OnListening: Sessions.RecheckAll), so the rotated key's
// idle websocket is closed (4401) and the others stay. /readyz answers 503
// while the feed does not listen. The listener's connection goes through a
// proxy the test cuts; the rotation goes through the API's own pool.
func TestListenerBackRechecksEveryWebsocket(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sessions := wstransport.NewSessions()
	var proxy *cutProxy
	w := newWorldWith(t, func(e *env) api.Config {
		proxy = newCutProxy(t, e.db.URL)
		hub := feed.New(e.db.Bun, proxy.url, slog.New(slog.NewTextHandler(io.Discard, nil)), feed.Options{
			OnRevoke: sessions.Revoke, OnPrincipalChange: sessions.Recheck, OnListening: sessions.RecheckAll,
			PingInterval: 100 * time.Millisecond, PingTimeout: time.Second,
		})
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = hub.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-done })
		return api.Config{Feed: hub, Sessions: sessions}
	})
	w.waitReadyz(t, http.StatusOK)
	gen := closedWith(ctx, w.open(t, ctx, w.genA.key, false))
	agent := closedWith(ctx, w.open(t, ctx, w.agent1.key, false))

	proxy.setCut(true)
	w.waitReadyz(t, http.StatusServiceUnavailable) // the hub knows it does not listen
	w.ok(t, w.admin, `mutation($id: ID!) { rotateGeneratorKey(id: $id) { apiKey } }`, map[string]any{"id": w.genA.id})
	select {
	case code := <-gen:
		t.Fatalf("closed (%d) while nobody listened: the test does not test the gap", code)
	case <-time.After(300 * time.Millisecond):
	}

	proxy.setCut(false)
	w.waitReadyz(t, http.StatusOK)
	wantClose(t, gen, wstransport.CloseRevoked, "the rotated generator's idle websocket")
	select {
	case code := <-agent:
		t.Fatalf("the agent's websocket closed (%d), its key still works", code)
	case <-time.After(300 * time.Millisecond):
	}
}
