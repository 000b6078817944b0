package api

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uptrace/bun"

	"github.com/brokkr/brokkr/auth"
	"github.com/brokkr/brokkr/feed"
	"github.com/brokkr/brokkr/models"
)

// metrics are per handler (own registry), so several handlers in one
// process (tests) do not collide.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	operations    *prometheus.CounterVec
	errors        *prometheus.CounterVec
	subscriptions *prometheus.GaugeVec
}

func newMetrics(cfg Config, limiter *auth.RateLimiter) *metrics {
	sessions := cfg.Sessions
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "brokkr_http_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "brokkr_http_request_duration_seconds",
			Help:    "HTTP request latency by route (websockets: until the upgrade; brokkr_websocket_connections counts the open ones).",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "brokkr_graphql_operations_total",
			Help: "GraphQL operations by type (query, mutation, subscription).",
		}, []string{"type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "brokkr_graphql_errors_total",
			Help: "GraphQL errors returned to clients, by extensions.code.",
		}, []string{"code"}),
		subscriptions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "brokkr_subscriptions",
			Help: "GraphQL subscriptions running, by kind (the subscription's root field).",
		}, []string{"kind"}),
	}
	for _, kind := range []string{feed.KindAgentFeed, feed.KindTargetChanges, feed.KindStackDashboard, feed.KindEventDashboard} {
		m.subscriptions.WithLabelValues(kind) // present at 0 before the first one
	}
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "brokkr_websocket_connections",
		Help: "Open GraphQL websocket connections.",
	}, func() float64 { return float64(sessions.Count()) })
	const refusals = "brokkr_rate_limit_refusals_total"
	refusedRequests := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name:        refusals,
		Help:        "Refusals by a limit on a principal's rate: generator requests refused RATE_LIMITED (limit=generator_requests), connection_init refused 1013 for a key's websockets cap (limit=websockets_per_key).",
		ConstLabels: prometheus.Labels{"limit": "generator_requests"},
	}, func() float64 { return float64(limiter.Refusals()) })
	refusedSockets := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name:        refusals,
		Help:        "Refusals by a limit on a principal's rate: generator requests refused RATE_LIMITED (limit=generator_requests), connection_init refused 1013 for a key's websockets cap (limit=websockets_per_key).",
		ConstLabels: prometheus.Labels{"limit": "websockets_per_key"},
	}, func() float64 { return float64(sessions.Refusals()) })
	m.reg.MustRegister(m.requests, m.duration, m.operations, m.errors, m.subscriptions, open, refusedRequests, refusedSockets,
		collectors.NewDBStatsCollector(cfg.DB.DB, "brokkr"),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if hub, ok := cfg.Feed.(feedStats); ok {
		m.reg.MustRegister(&feedCollector{db: cfg.DB, hub: hub, logger: cfg.Logger})
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code != 0 {
		return // a refused websocket upgrade answers twice; keep the first
	}
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController (websocket hijacking, flushing)
// reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (m *metrics) instrument(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accessFor(r.Context()).setRoute(route)
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		code := rec.code
		if code == 0 {
			code = http.StatusSwitchingProtocols // hijacked (websocket)
		}
		m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// feedStats is what feed.Hub reports (Config.Feed, when it is one).
type feedStats interface{ Stats() feed.Stats }

// feedCollector reports the feed at each scrape: the newest sequence
// committed (read from the database) and dispatched, the lag between them,
// and the slow subscribers cut off.
type feedCollector struct {
	db     *bun.DB
	hub    feedStats
	logger *slog.Logger
}

var (
	feedLagDesc = prometheus.NewDesc("brokkr_feed_lag_sequences",
		"Newest committed deployment-object sequence minus the newest the feed has dispatched to subscribers.", nil, nil)
	feedCommittedDesc = prometheus.NewDesc("brokkr_feed_committed_sequence",
		"Newest committed deployment-object sequence (read at scrape time).", nil, nil)
	feedDispatchedDesc = prometheus.NewDesc("brokkr_feed_dispatched_sequence",
		"Newest deployment-object sequence the feed has dispatched (its watermark).", nil, nil)
	feedCutOffsDesc = prometheus.NewDesc("brokkr_feed_slow_subscriber_cutoffs_total",
		"Subscriptions cut off for being too slow (buffer full); they resume with after. By kind (root field).", []string{"kind"}, nil)
)

func (c *feedCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- feedLagDesc
	ch <- feedCommittedDesc
	ch <- feedDispatchedDesc
	ch <- feedCutOffsDesc
}

func (c *feedCollector) Collect(ch chan<- prometheus.Metric) {
	// Committed first, then the watermark: a commit dispatched in between
	// would make the lag negative, which is clamped to 0 (the other order
	// would overstate it instead).
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	committed, err := models.MaxSequence(ctx, c.db)
	cancel()
	st := c.hub.Stats()
	ch <- prometheus.MustNewConstMetric(feedDispatchedDesc, prometheus.GaugeValue, float64(st.Watermark))
	if err != nil {
		c.logger.Warn("api: metrics: reading the newest committed sequence", "err", err)
	} else {
		ch <- prometheus.MustNewConstMetric(feedCommittedDesc, prometheus.GaugeValue, float64(committed))
		ch <- prometheus.MustNewConstMetric(feedLagDesc, prometheus.GaugeValue, float64(max(committed-st.Watermark, 0)))
	}
	for kind, n := range st.CutOffs {
		ch <- prometheus.MustNewConstMetric(feedCutOffsDesc, prometheus.CounterValue, float64(n), kind)
	}
}
