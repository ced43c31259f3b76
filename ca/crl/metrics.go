package crl

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics counts rebuilds and watches the CRLs being served.
type metrics struct {
	rebuilds *prometheus.CounterVec
	duration *prometheus.HistogramVec
	entries  prometheus.GaugeFunc
	expired  prometheus.GaugeFunc
}

func newMetrics(b *Builder) *metrics {
	return &metrics{
		rebuilds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gwpki_crl_rebuilds_total",
			Help: "Shard CRLs rebuilt, by trigger (start, revocation, schedule, retry) and result.",
		}, []string{"trigger", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gwpki_crl_build_duration_seconds",
			Help:    "Time to rebuild a batch of shard CRLs, CRL number reservation included, by trigger.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"trigger"}),
		entries: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gwpki_crl_entries",
			Help: "Revoked certificates listed on the CRLs being served, all shards together.",
		}, func() float64 {
			n := 0
			for i := range b.shards {
				if c := b.shards[i].cur.Load(); c != nil {
					n += c.entries
				}
			}
			return float64(n)
		}),
		expired: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "gwpki_crl_expired_shards",
			Help: "Shards whose CRL being served is past its nextUpdate (should be 0).",
		}, func() float64 {
			now, n := b.cfg.Clock(), 0
			for i := range b.shards {
				if c := b.shards[i].cur.Load(); c != nil && !now.Before(c.nextUpdate) {
					n++
				}
			}
			return float64(n)
		}),
	}
}

// register hands the metrics to reg, if there is one.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.rebuilds, m.duration, m.entries, m.expired} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register CRL metrics: %w", err)
		}
	}
	return nil
}

// observe records a batch rebuild of shards, failed of which failed.
func (m *metrics) observe(trigger string, shards, failed int, took time.Duration) {
	m.rebuilds.WithLabelValues(trigger, "ok").Add(float64(shards - failed))
	if failed > 0 {
		m.rebuilds.WithLabelValues(trigger, "error").Add(float64(failed))
	}
	m.duration.WithLabelValues(trigger).Observe(took.Seconds())
}
