package feed_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brokkr/brokkr/dbtest"
	"github.com/brokkr/brokkr/feed"
)

// A half-dead LISTEN connection (its peer gone without a word: nothing
// arrives, nothing fails) is found by the ping and replaced, and the hub
// catches up from the tables. The poll is off, so without the ping the
// object written after the connection went dead never arrives.
func TestHalfDeadListenerIsPingedAndReplaced(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	p := newProxy(t, db.URL)
	h := feed.New(db.Bun, p.url, testLogger(), feed.Options{
		PollInterval: time.Hour, PingInterval: 100 * time.Millisecond, PingTimeout: 300 * time.Millisecond,
	})
	startRunning(t, h)
	g := f.generator()
	s := f.stack(g)
	a := f.agent(true)
	f.target(a, s)
	ch := feedOf(t, h, a, nil)
	first := f.object(s) // its NOTIFY comes through the proxy
	equal(t, recvN(t, ch, 1, wait), []int64{first})

	p.freeze() // the connection stays open, and silent
	next := f.object(s)
	deadline := time.Now().Add(wait)
	for p.conns.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the half-dead listener connection was not replaced")
		}
		time.Sleep(10 * time.Millisecond)
	}
	equal(t, recvN(t, ch, 1, wait), []int64{next})
	// The new connection serves notifications (the poll is off).
	last := f.object(s)
	equal(t, recvN(t, ch, 1, wait), []int64{last})
}

// A healthy listener that stays silent past many ping intervals keeps its
// one connection (a wait cut short by its deadline leaves it usable) and
// still delivers notifications (the poll is off).
func TestQuietListenerKeepsItsConnection(t *testing.T) {
	t.Parallel()
	db := dbtest.New(t)
	f := newFixture(t, db)
	p := newProxy(t, db.URL)
	h := feed.New(db.Bun, p.url, testLogger(), feed.Options{
		PollInterval: time.Hour, PingInterval: 20 * time.Millisecond, PingTimeout: 2 * time.Second,
	})
	startRunning(t, h)
	s := f.stack(f.generator())
	a := f.agent(true)
	f.target(a, s)
	ch := feedOf(t, h, a, nil)
	for range 3 {
		time.Sleep(200 * time.Millisecond) // about ten waits cut short, and pings
		seq := f.object(s)
		equal(t, recvN(t, ch, 1, wait), []int64{seq})
	}
	if n := p.conns.Load(); n != 1 {
		t.Fatalf("%d listener connections, want 1", n)
	}
}

// startRunning runs h until the test ends.
func startRunning(t *testing.T, h *feed.Hub) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := h.Run(ctx); err != nil {
			t.Errorf("hub.Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	h.Channel()
}

// proxy forwards TCP connections to PostgreSQL; freeze makes the ones open
// stop forwarding without closing (a peer that vanished), new ones work.
type proxy struct {
	url    string
	conns  atomic.Int64
	end    chan struct{} // closed when the test ends
	mu     sync.Mutex
	frozen []chan struct{}
}

func newProxy(t *testing.T, dbURL string) *proxy {
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
	p := &proxy{url: u.String(), end: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); close(p.end); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns.Add(1)
			wg.Go(func() { p.serve(c, target) })
		}
	})
	return p
}

func (p *proxy) serve(c net.Conn, target string) {
	defer c.Close()
	s, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer s.Close()
	stop := make(chan struct{})
	p.mu.Lock()
	p.frozen = append(p.frozen, stop)
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { pipe(c, s, stop); done <- struct{}{} }()
	go func() { pipe(s, c, stop); done <- struct{}{} }()
	select {
	case <-done:
	case <-p.end:
	}
	select {
	case <-stop: // frozen: hold both ends open, forwarding nothing, until the test ends
		<-p.end
	default:
	}
}

// pipe copies from src to dst until either fails or stop closes (then it
// forwards nothing more and returns).
func pipe(dst, src net.Conn, stop chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		_ = src.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := src.Read(buf)
		select {
		case <-stop:
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil && !isTimeout(err) {
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// freeze stops every connection open now.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.frozen {
		close(s)
	}
	p.frozen = nil
}
