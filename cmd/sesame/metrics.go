package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sesamehq/sesame/internal/audit"
)

// newMetrics returns the server's metrics registry (its own, not the global default) with
// the audit trail's counters, and the handler that serves it.
func newMetrics(trail *audit.Log) (*prometheus.Registry, http.Handler) {
	reg := prometheus.NewRegistry()
	stat := func() audit.Stats { return trail.Stats() }
	reg.MustRegister(
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
	return reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
