package claim

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// WithRegisterer registers the service's metrics on reg: gwpki_logins_total
// ([NewAccounts]), gwpki_claim_attempts_total ([NewClaims]) and
// gwpki_claim_locks_total ([NewAttempts]). Without it they are counted but
// not exported.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(o *options) { o.registerer = reg }
}

// register adds cs to reg, if there is one.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register claim metrics: %w", err)
		}
	}
	return nil
}

// Login results, as counted by gwpki_logins_total.
const (
	loginOK      = "ok"
	loginRefused = "refused" // wrong or unknown username or password, or a request without them
	loginLimited = "limited" // too many failures from the address or for the user
	loginError   = "error"
)

// counters is a counter vector's children, resolved once per label value.
type counters map[string]prometheus.Counter

func newCounters(vec *prometheus.CounterVec, labels ...string) counters {
	m := counters{}
	for _, l := range labels {
		m[l] = vec.WithLabelValues(l)
	}
	return m
}

func newLoginMetrics(reg prometheus.Registerer) (counters, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gwpki_logins_total",
		Help: "POST /v1/login answers by result: ok, refused (invalid credentials), limited (too many failures), error.",
	}, []string{"result"})
	return newCounters(vec, loginOK, loginRefused, loginLimited, loginError), register(reg, vec)
}

// Claim results besides the refusal reasons of claimResults.
const (
	claimClaimed = "claimed"
	claimLimited = "limited"
	claimLocked  = "locked"
	claimError   = "error"
)

func newClaimMetrics(reg prometheus.Registerer) (counters, error) {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gwpki_claim_attempts_total",
		Help: "Claim attempts by result: claimed, a refusal reason (wrong_code, typo, malformed, invalid_serial, already_claimed, code_used, limited, locked) or error.",
	}, []string{"result"})
	labels := []string{claimClaimed, claimLimited, claimLocked, claimError}
	for _, r := range claimResults {
		labels = append(labels, r.reason)
	}
	return newCounters(vec, labels...), register(reg, vec)
}

// claimResult names the outcome of a claim as gwpki_claim_attempts_total
// counts it: the words of the audit log.
func claimResult(err error) string {
	if err == nil {
		return claimClaimed
	}
	var le *LimitError
	if errors.As(err, &le) {
		if le.Locked {
			return claimLocked
		}
		return claimLimited
	}
	for _, r := range claimResults {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return claimError
}

func newLockMetric(reg prometheus.Registerer) (prometheus.Counter, error) {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gwpki_claim_locks_total",
		Help: "Gateways whose claims were locked after too many failed attempts (until an operator unlocks them or the claim button is pressed).",
	})
	return c, register(reg, c)
}
