package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sesamehq/sesame"
	"github.com/sesamehq/sesame/internal/audit"
	"github.com/sesamehq/sesame/internal/gateway"
	"github.com/sesamehq/sesame/internal/httpapi"
	"github.com/sesamehq/sesame/internal/oauth"
)

// serverMetrics is one server's Prometheus registry (its own, never the global default)
// and the collectors that the request path feeds. Labels are bounded by configuration:
// route patterns (never raw paths), standard methods, connection and workspace names an
// administrator created, limiter and store-fault names. No label or value holds a secret.
type serverMetrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec   // route, method, status
	duration    *prometheus.HistogramVec // route, method
	refusals    *prometheus.CounterVec   // limiter
	storeErrors *prometheus.CounterVec   // class
	upstream    *prometheus.CounterVec   // workspace, connection, status
	upstreamDur *prometheus.HistogramVec // workspace, connection
}

// Limiters whose refusals are counted; each series exists from the start at 0.
var limiterNames = []string{httpapi.LimiterAuthFailures, "trial", "connection", httpapi.LimiterAnonymous}

// storeFaultClass maps the error codes of store faults to their class label.
var storeFaultClass = map[sesame.Code]string{
	sesame.CodeStoreUnavailable: "unavailable",
	sesame.CodeStorageFull:      "storage_full",
}

// newMetrics returns the server's metrics with the audit trail's counters.
func newMetrics(trail *audit.Log) *serverMetrics {
	m := &serverMetrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sesame_http_requests_total",
		Help: "HTTP requests served, by route pattern, method and status."}, []string{"route", "method", "status"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sesame_http_request_duration_seconds",
		Help:    "Time to serve an HTTP request (a proxied or streamed one until its body is sent), by route pattern and method.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"route", "method"})
	m.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sesame_rate_limit_refusals_total",
		Help: "Requests refused by a limiter: auth_failures (failed authentications per source), trial (trial app tokens per source), connection (a connection's outbound rate limit), anonymous (the cap on unauthenticated requests in progress)."},
		[]string{"limiter"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sesame_store_errors_total",
		Help: "Requests answered 503 because of a store fault, by class: unavailable (store unreachable), storage_full (disk full)."},
		[]string{"class"})
	m.upstream = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sesame_upstream_calls_total",
		Help: "Outbound calls (function calls, proxied requests, connection tests) by workspace, connection and upstream status (\"error\" when no response came)."},
		[]string{"workspace", "connection", "status"})
	m.upstreamDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sesame_upstream_call_duration_seconds",
		Help:    "Time until the upstream's response headers (or the failure), by workspace and connection.",
		Buckets: prometheus.DefBuckets}, []string{"workspace", "connection"})
	for _, l := range limiterNames {
		m.refusals.WithLabelValues(l)
	}
	for _, c := range storeFaultClass {
		m.storeErrors.WithLabelValues(c)
	}
	m.reg.MustRegister(m.requests, m.duration, m.refusals, m.storeErrors, m.upstream, m.upstreamDur,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if trail != nil {
		m.registerAudit(trail)
	}
	return m
}

// registerAudit exports the audit trail's queue, spill and loss counters.
func (m *serverMetrics) registerAudit(trail *audit.Log) {
	stat := func() audit.Stats { return trail.Stats() }
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sesame_audit_queue_depth",
			Help: "Audit events waiting for the background writer."},
			func() float64 { return float64(stat().Queued) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sesame_audit_committed_total",
			Help: "Audit events appended to the chain."},
			func() float64 { return float64(stat().Committed) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sesame_audit_appends_total",
			Help: "Store transactions that appended audit events (each holds a batch: committed / appends is the batch size)."},
			func() float64 { return float64(stat().Appends) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sesame_audit_spilled_total",
			Help: "Audit events written to the local spill file while the store could not take them."},
			func() float64 { return float64(stat().Spilled) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sesame_audit_replayed_total",
			Help: "Spilled audit events replayed into the chain."},
			func() float64 { return float64(stat().Replayed) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sesame_audit_spill_pending",
			Help: "Audit events in the spill file waiting to be replayed."},
			func() float64 { return float64(stat().SpillPending) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sesame_audit_dropped_total",
			Help: "Audit events lost (each loss is recorded in the chain by an audit.gap event)."},
			func() float64 { return float64(stat().Dropped) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sesame_audit_gap_events_total",
			Help: "audit.gap events written to record lost audit events."},
			func() float64 { return float64(stat().GapEvents) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sesame_audit_append_failures_total",
			Help: "Failed attempts to append audit events to the store."},
			func() float64 { return float64(stat().Failures) }),
	)
}

// handler serves the registry in the Prometheus text format.
func (m *serverMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observe counts one finished request (httpapi.Config.Observe).
func (m *serverMetrics) observe(o httpapi.Observation) {
	m.requests.WithLabelValues(o.Route, o.Method, strconv.Itoa(o.Status)).Inc()
	m.duration.WithLabelValues(o.Route, o.Method).Observe(o.Duration.Seconds())
	if o.Limiter != "" {
		m.refusals.WithLabelValues(o.Limiter).Inc()
	}
	if class, ok := storeFaultClass[o.Code]; ok {
		m.storeErrors.WithLabelValues(class).Inc()
	}
}

// RecordCall counts one outbound call (a gateway.Recorder).
func (m *serverMetrics) RecordCall(_ context.Context, r gateway.CallRecord) {
	status := "error"
	if r.Status > 0 {
		status = strconv.Itoa(r.Status)
	}
	m.upstream.WithLabelValues(r.Workspace, r.Connection, status).Inc()
	m.upstreamDur.WithLabelValues(r.Workspace, r.Connection).Observe(r.Latency.Seconds())
}

// cacheStats is a cache that counts its hits and misses.
type cacheStats interface{ CacheStats() (hits, misses uint64) }

// registerCaches exports the hits and misses of the API key cache and the access
// decision cache.
func (m *serverMetrics) registerCaches(keys, decisions cacheStats) {
	for _, c := range []struct {
		name, help string
		cache      cacheStats
	}{
		{"sesame_key_cache", "API keys verified from the key cache (hits) or looked up in the store (misses).", keys},
		{"sesame_decision_cache", "Access decisions made from cached privileges (hits) or after reading them from the store (misses).", decisions},
	} {
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name + "_hits_total", Help: c.help},
				func() float64 { h, _ := c.cache.CacheStats(); return float64(h) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name + "_misses_total", Help: c.help},
				func() float64 { _, n := c.cache.CacheStats(); return float64(n) }),
		)
	}
}

// registerOAuth exports the OAuth2 token refresh counters.
func (m *serverMetrics) registerOAuth(om *oauth.Manager) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sesame_oauth_refreshes_total",
			Help: "OAuth2 access tokens obtained and stored by this process (refreshes and client-credentials fetches)."},
			func() float64 { return float64(om.Stats().Refreshes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sesame_oauth_refresh_failures_total",
			Help: "OAuth2 token refreshes that the token endpoint refused or that failed."},
			func() float64 { return float64(om.Stats().RefreshFailures) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "sesame_oauth_reauthorizations_total",
			Help: "OAuth2 grants marked as needing re-authorization (the provider refused the refresh token)."},
			func() float64 { return float64(om.Stats().Reauthorizations) }),
	)
}

// serveMetrics listens on addr (--metrics-addr) and serves only GET /metrics there, without
// authentication: the address is meant for an internal network. It returns a function that
// stops the listener.
func serveMetrics(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics listener stopped", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", "http://"+ln.Addr().String()+"/metrics")
	return func() { _ = srv.Close() }, nil
}
