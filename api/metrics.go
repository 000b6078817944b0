package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/brokkr/brokkr/wstransport"
)

// metrics are per handler (own registry), so several handlers in one
// process (tests) do not collide.
type metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	operations *prometheus.CounterVec
	errors     *prometheus.CounterVec
}

func newMetrics(sessions *wstransport.Sessions) *metrics {
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
	}
	open := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "brokkr_websocket_connections",
		Help: "Open GraphQL websocket connections.",
	}, func() float64 { return float64(sessions.Count()) })
	m.reg.MustRegister(m.requests, m.duration, m.operations, m.errors, open,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
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

// The handler extension side: operations and error codes.
func (*metrics) ExtensionName() string                   { return "BrokkrMetrics" }
func (*metrics) Validate(graphql.ExecutableSchema) error { return nil }

func (m *metrics) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if op := graphql.GetOperationContext(ctx); op != nil && op.Operation != nil {
		m.operations.WithLabelValues(string(op.Operation.Operation)).Inc()
	}
	return next(ctx)
}

func (m *metrics) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp != nil {
		for _, e := range resp.Errors {
			code, _ := e.Extensions["code"].(string)
			if code == "" {
				code = "UNKNOWN"
			}
			m.errors.WithLabelValues(code).Inc()
		}
	}
	return resp
}
