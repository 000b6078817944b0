package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Khan/genqlient/graphql"
)

// Defaults for the zero values of Options.
const (
	DefaultMaxAttempts = 5
	DefaultMinBackoff  = 250 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
	DefaultTimeout     = 60 * time.Second
)

// Options tune a Client; the zero value is the default.
type Options struct {
	// HTTPClient sends queries and mutations (a client with Timeout when nil).
	HTTPClient *http.Client
	// Timeout bounds one HTTP request when HTTPClient is nil (DefaultTimeout).
	Timeout time.Duration
	// MaxAttempts bounds the attempts of one query or mutation that fails
	// in a way that is safe to retry (DefaultMaxAttempts; 1: no retries).
	// Subscriptions reconnect without bound, until their context ends.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait before a retry or reconnect:
	// it doubles from MinBackoff up to MaxBackoff, with jitter, and is never
	// shorter than a retryAfter the broker sent.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// UserAgent is sent with every request ("brokkr-go-client" when empty).
	UserAgent string
	// Logger gets a line for every retry and reconnect (discarded when nil).
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: o.Timeout}
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.UserAgent == "" {
		o.UserAgent = "brokkr-go-client"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Client calls one broker with one API key. It is a graphql.Client for the
// generated functions, and safe for concurrent use.
type Client struct {
	base  *url.URL // the broker's base URL
	key   string
	opts  Options
	inner graphql.Client
}

var _ graphql.Client = (*Client)(nil)

// New returns a client of the broker at baseURL (http:// or https://, for
// example "http://localhost:8080"; GraphQL is at /query) with the API key
// key (may be empty, for the few requests that need none).
func New(baseURL, key string, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("broker URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("broker URL %q: want http://host[:port] or https://host[:port]", baseURL)
	}
	opts.defaults()
	c := &Client{base: u, key: key, opts: opts}
	hc := *opts.HTTPClient
	hc.Transport = &authTransport{key: key, agent: opts.UserAgent, next: transportOf(opts.HTTPClient)}
	c.inner = graphql.NewClient(c.endpoint("http"), &hc)
	return c, nil
}

func transportOf(hc *http.Client) http.RoundTripper {
	if hc.Transport != nil {
		return hc.Transport
	}
	return http.DefaultTransport
}

// URL is the broker's base URL.
func (c *Client) URL() string { return c.base.String() }

// endpoint is /query under the base URL, with scheme "http" (as given) or
// "ws" (ws:// or wss://).
func (c *Client) endpoint(kind string) string {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + "/query"
	if kind == "ws" {
		u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	}
	return u.String()
}

// authTransport adds the key and the user agent to every request.
type authTransport struct {
	key, agent string
	next       http.RoundTripper
}

func (t *authTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if t.key != "" {
		r.Header.Set("Authorization", "Bearer "+t.key)
	}
	r.Header.Set("User-Agent", t.agent)
	return t.next.RoundTrip(r)
}

// MakeRequest sends one query or mutation, retrying what is safe to retry
// (see the package documentation).
func (c *Client) MakeRequest(ctx context.Context, req *graphql.Request, resp *graphql.Response) error {
	mutation := isMutation(req.Query)
	for attempt := 1; ; attempt++ {
		err := c.inner.MakeRequest(ctx, req, resp)
		if err == nil || ctx.Err() != nil || attempt >= c.opts.MaxAttempts {
			return err
		}
		hint, retry := retryable(err, mutation)
		if !retry {
			return err
		}
		wait := c.backoff(attempt-1, hint)
		c.opts.Logger.Warn("brokkr request failed; retrying", "operation", req.OpName, "attempt", attempt, "in", wait.Round(time.Millisecond), "err", err)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		resp.Errors, resp.Extensions = nil, nil
	}
}

func isMutation(query string) bool {
	return strings.HasPrefix(strings.TrimSpace(query), "mutation")
}

// retryable says whether a failed request may be sent again, and after
// how long at least (the broker's retryAfter, when it sent one).
func retryable(err error, mutation bool) (time.Duration, bool) {
	hint, _ := RetryAfter(err)
	if refusedWhole(err) {
		return hint, true
	}
	switch ErrorCode(err) {
	case CodeRateLimited:
		return hint, true // the whole request was refused before anything ran
	case CodeUnavailable:
		return hint, !mutation // a write so answered may have been committed
	case "":
		var he *graphql.HTTPError
		if errors.As(err, &he) {
			return 0, !mutation && he.StatusCode >= 500
		}
		return 0, !mutation && !isPermanentTransportError(err)
	}
	return 0, false
}

// refusedWhole: the request never reached the broker (the connection could
// not be opened), or the broker refused it before running any of it (an
// error with no path while data is null: the key check, say).
func refusedWhole(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var list interface{ Unwrap() []error }
	if errors.As(err, &list) {
		for _, e := range list.Unwrap() {
			if ge := asGQLError(e); ge != nil && len(ge.Path) > 0 {
				return false
			}
		}
		return ErrorCode(err) == CodeUnavailable
	}
	return false
}

// isPermanentTransportError: errors that another attempt cannot fix (a bad
// URL, a TLS certificate that does not verify).
func isPermanentTransportError(err error) bool {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return true // not a transport error at all: a decoding error, say
	}
	s := ue.Err.Error()
	return strings.Contains(s, "certificate") || strings.Contains(s, "unsupported protocol")
}

// backoff is the wait before retry number n (0 for the first): doubling
// from MinBackoff up to MaxBackoff, the upper half of it at random (so
// clients that failed together do not come back together), and at least
// hint.
func (c *Client) backoff(n int, hint time.Duration) time.Duration {
	d := c.opts.MinBackoff
	for i := 0; i < n && d < c.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.opts.MaxBackoff)
	d = d/2 + rand.N(d/2+1)
	return max(d, hint)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
