package bootstrap

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// result is what one POST /v1/bootstrap came to, as counted.
type result int

const (
	resultIssued  result = iota
	resultRefused        // answered 4xx (not authenticated, not registered, decommissioned, a bad CSR, ...)
	resultLimited        // the gateway's MaxPerHour reached: 429
	resultError          // answered 5xx (the store, the CA)
	numResults
)

var resultLabels = [numResults]string{"issued", "refused", "limited", "error"}

// metrics counts bootstraps by result and times them, resolved once per
// result.
type metrics struct {
	requests [numResults]prometheus.Counter
	duration [numResults]prometheus.Observer
	vecs     []prometheus.Collector
}

func newMetrics() *metrics {
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gwpki_bootstrap_requests_total",
		Help: "POST /v1/bootstrap answers by result: issued, refused (4xx), limited (a gateway's hourly bootstraps), error (5xx).",
	}, []string{"result"})
	took := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gwpki_bootstrap_duration_seconds",
		Help:    "Time to answer POST /v1/bootstrap, by result; an issued certificate is durable before the answer.",
		Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
	}, []string{"result"})
	m := &metrics{vecs: []prometheus.Collector{reqs, took}}
	for i, l := range resultLabels {
		m.requests[i] = reqs.WithLabelValues(l)
		m.duration[i] = took.WithLabelValues(l)
	}
	return m
}

func (m *metrics) count(r result, took time.Duration) {
	m.requests[r].Inc()
	m.duration[r].Observe(took.Seconds())
}

// RegisterMetrics adds the service's metrics (gwpki_bootstrap_requests_total
// and gwpki_bootstrap_duration_seconds, both by result) to reg.
func (s *Service) RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range s.metrics.vecs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register bootstrap metrics: %w", err)
		}
	}
	return nil
}
