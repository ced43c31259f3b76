package ca

import (
	"crypto/x509"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/smallstep/certificates/authority/provisioner"
	"golang.org/x/crypto/ssh"
)

// metrics counts what the authority does. It is step-ca's authority.Meter,
// so step-ca reports every signature, renewal and rekey, whatever the route.
type metrics struct {
	issued  *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gwpki_ca_certificates_total",
			Help: "X.509 certificate operations by kind (sign, renew, rekey), provisioner and result.",
		}, []string{"kind", "provisioner", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gwpki_ca_request_duration_seconds",
			Help:    "Latency of certificate-issuing API requests, from request to durable answer.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "code"}),
	}
	if reg != nil {
		reg.MustRegister(m.issued, m.latency)
	}
	return m
}

func (m *metrics) count(kind string, p provisioner.Interface, err error) {
	name, result := "", "ok"
	if p != nil {
		name = p.GetName()
	}
	if err != nil {
		result = "error"
	}
	m.issued.WithLabelValues(kind, name, result).Inc()
}

func (m *metrics) X509Signed(_ []*x509.Certificate, p provisioner.Interface, err error) {
	m.count("sign", p, err)
}
func (m *metrics) X509Renewed(_ []*x509.Certificate, p provisioner.Interface, err error) {
	m.count("renew", p, err)
}
func (m *metrics) X509Rekeyed(_ []*x509.Certificate, p provisioner.Interface, err error) {
	m.count("rekey", p, err)
}
func (m *metrics) X509WebhookAuthorized(provisioner.Interface, error) {}
func (m *metrics) X509WebhookEnriched(provisioner.Interface, error)   {}
func (m *metrics) SSHSigned(_ *ssh.Certificate, p provisioner.Interface, err error) {
	m.count("ssh-sign", p, err)
}
func (m *metrics) SSHRenewed(_ *ssh.Certificate, p provisioner.Interface, err error) {
	m.count("ssh-renew", p, err)
}
func (m *metrics) SSHRekeyed(_ *ssh.Certificate, p provisioner.Interface, err error) {
	m.count("ssh-rekey", p, err)
}
func (m *metrics) SSHWebhookAuthorized(provisioner.Interface, error) {}
func (m *metrics) SSHWebhookEnriched(provisioner.Interface, error)   {}
func (m *metrics) KMSSigned(error)                                   {}
func (m *metrics) KMSError(error)                                    {}

// issuingRoutes are the step-ca routes whose latency is measured.
var issuingRoutes = map[string]string{
	"/sign": "sign", "/1.0/sign": "sign",
	"/renew": "renew", "/1.0/renew": "renew",
	"/rekey": "rekey", "/1.0/rekey": "rekey",
	"/revoke": "revoke", "/1.0/revoke": "revoke",
}

// measure records the latency of issuing requests.
func (m *metrics) measure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, ok := issuingRoutes[r.URL.Path]
		if !ok || r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		m.latency.WithLabelValues(route, http.StatusText(sw.code)).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}
