package ocsp

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// outcome is what one OCSP answer said, as counted by the metrics.
type outcome int

const (
	outGood outcome = iota
	outRevoked
	outUnknown
	outMalformed
	outUnauthorized
	outTryLater
	outInternalError
	numOutcomes
)

var outcomeLabels = [numOutcomes]string{
	"good", "revoked", "unknown", "malformed", "unauthorized", "try_later", "internal_error",
}

func statusOutcome(s Status) outcome {
	switch s {
	case Good:
		return outGood
	case Revoked:
		return outRevoked
	}
	return outUnknown
}

// metrics holds the responder's counters, resolved once so that counting
// an answer is one atomic add.
type metrics struct {
	responses [numOutcomes]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, entries func() float64) (*metrics, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gwpki_ocsp_responses_total",
		Help: "OCSP answers by status: good, revoked, unknown, or the error status sent instead.",
	}, []string{"status"})
	m := &metrics{}
	for i, l := range outcomeLabels {
		m.responses[i] = vec.WithLabelValues(l)
	}
	if reg == nil {
		return m, nil
	}
	gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gwpki_ocsp_cache_entries",
		Help: "OCSP responses held in the responder's cache.",
	}, entries)
	for _, c := range []prometheus.Collector{vec, gauge} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register OCSP metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) count(o outcome) { m.responses[o].Inc() }
