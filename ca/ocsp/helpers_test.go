package ocsp_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	xocsp "golang.org/x/crypto/ocsp"

	"github.com/gwpki/gwpki/ca/ocsp"
	"github.com/gwpki/gwpki/internal/testpki"
)

// pki is a root and an issuing CA under it, as gwpki init makes them.
type pki struct {
	root      *testpki.CA
	issuer    *x509.Certificate
	issuerKey *ecdsa.PrivateKey
	issuerPEM []byte
}

// newPKI makes a root (testpki's, valid for an hour) and an issuing CA
// under it valid until notAfter.
func newPKI(tb testing.TB, notAfter time.Time) *pki {
	tb.Helper()
	root := testpki.NewCA(tb, "Test Root CA")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: "Test Issuing CA", Organization: []string{"gwpki test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, root.Cert, key.Public(), root.Key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &pki{root: root, issuer: cert, issuerKey: key, issuerPEM: pemCert(der)}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// leaf issues a gateway-like leaf certificate with the given serial.
func leaf(tb testing.TB, issuer *x509.Certificate, issuerKey crypto.Signer, serial *big.Int) *x509.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "GW-" + serial.Text(16)},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     issuer.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, issuer, key.Public(), issuerKey)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}

// store is a Source over a map, counting lookups. A serial it has no entry
// for is Unknown.
type store struct {
	mu      sync.Mutex
	m       map[string]ocsp.Entry
	err     error
	lookups atomic.Int64
	// hook, when set, runs after the entry is read and before it is
	// returned: a lookup in flight.
	hook func(serial *big.Int)
}

func newStore() *store { return &store{m: map[string]ocsp.Entry{}} }

func (s *store) set(serial *big.Int, e ocsp.Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[serial.String()] = e
}

func (s *store) Lookup(_ context.Context, serial *big.Int) (ocsp.Entry, error) {
	s.lookups.Add(1)
	s.mu.Lock()
	e, err, hook := s.m[serial.String()], s.err, s.hook
	s.mu.Unlock()
	if hook != nil {
		hook(serial)
	}
	return e, err
}

// clock is an adjustable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

// newClock starts at the current second, so that header values derived
// from it are whole numbers.
func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a responder for a test PKI over a test store.
type env struct {
	pki   *pki
	store *store
	clock *clock
	r     *ocsp.Responder
}

// newEnv returns a responder configured by cfg with the env's PKI, store
// and clock filled in (and a discarding logger unless cfg has one).
func newEnv(tb testing.TB, cfg ocsp.Config) *env {
	tb.Helper()
	e := &env{pki: newPKI(tb, time.Now().Add(time.Hour)), store: newStore(), clock: newClock()}
	return e.start(tb, cfg)
}

// longEnv is an env whose issuing CA lasts a year, so that the clock can
// run through several responder lifetimes.
func longEnv(tb testing.TB, cfg ocsp.Config) *env {
	tb.Helper()
	e := &env{pki: newPKI(tb, time.Now().Add(365*24*time.Hour)), store: newStore(), clock: newClock()}
	return e.start(tb, cfg)
}

func (e *env) start(tb testing.TB, cfg ocsp.Config) *env {
	tb.Helper()
	cfg.Issuer, cfg.IssuerKey, cfg.Source = e.pki.issuer, e.pki.issuerKey, e.store
	if cfg.Clock == nil {
		cfg.Clock = e.clock.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r, err := ocsp.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	e.r = r
	return e
}

// good registers a fresh serial as good in the store and returns a leaf
// certificate with it.
func (e *env) good(tb testing.TB) *x509.Certificate {
	tb.Helper()
	c := leaf(tb, e.pki.issuer, e.pki.issuerKey, randomSerial(tb))
	e.store.set(c.SerialNumber, ocsp.Entry{Status: ocsp.Good})
	return c
}

func randomSerial(tb testing.TB) *big.Int {
	tb.Helper()
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		tb.Fatal(err)
	}
	return sn.Add(sn, big.NewInt(1))
}

// request returns the DER OCSP request for serial under the env's issuer.
func (e *env) request(tb testing.TB, serial *big.Int, h crypto.Hash) []byte {
	tb.Helper()
	return requestFor(tb, e.pki.issuer, serial, h)
}

func requestFor(tb testing.TB, issuer *x509.Certificate, serial *big.Int, h crypto.Hash) []byte {
	tb.Helper()
	der, err := xocsp.CreateRequest(&x509.Certificate{SerialNumber: serial}, issuer, &xocsp.RequestOptions{Hash: h})
	if err != nil {
		tb.Fatal(err)
	}
	return der
}

// serve runs one request through the responder's ServeHTTP.
func (e *env) serve(method, path string, body []byte, header http.Header) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req := httptest.NewRequest(method, "http://ocsp.test/", rd)
	req.URL.Path, req.URL.RawPath = path, ""
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	e.r.ServeHTTP(w, req)
	return w
}

// post asks by POST.
func (e *env) post(der []byte) *httptest.ResponseRecorder {
	return e.serve(http.MethodPost, "/ocsp", der, nil)
}

// parse checks that w is an OCSP answer and returns the response verified
// against the env's issuer; an OCSP error status comes back as the error.
func (e *env) parse(tb testing.TB, w *httptest.ResponseRecorder, cert *x509.Certificate) (*xocsp.Response, error) {
	tb.Helper()
	if w.Code != http.StatusOK {
		tb.Fatalf("HTTP status %d; want 200 (body %q)", w.Code, w.Body.Bytes())
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/ocsp-response" {
		tb.Fatalf("Content-Type %q; want application/ocsp-response", ct)
	}
	resp, err := xocsp.ParseResponseForCert(w.Body.Bytes(), cert, e.pki.issuer)
	if _, isStatus := err.(xocsp.ResponseError); err != nil && !isStatus {
		tb.Fatalf("parse OCSP response: %v", err)
	}
	return resp, err
}

// status asks by POST about cert (SHA-1 CertID) and returns the verified
// response, failing on an OCSP error status.
func (e *env) status(tb testing.TB, cert *x509.Certificate, h crypto.Hash) *xocsp.Response {
	tb.Helper()
	resp, err := e.parse(tb, e.post(e.request(tb, cert.SerialNumber, h)), cert)
	if err != nil {
		tb.Fatalf("OCSP answer for %s: %v; want a response", cert.SerialNumber.Text(16), err)
	}
	return resp
}

// wantError checks that w is the OCSP error status want, not cacheable.
func (e *env) wantError(tb testing.TB, w *httptest.ResponseRecorder, want xocsp.ResponseStatus) {
	tb.Helper()
	_, err := e.parse(tb, w, nil)
	if got, ok := err.(xocsp.ResponseError); !ok || got.Status != want {
		tb.Fatalf("OCSP answer %v; want status %v", err, want)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		tb.Errorf("Cache-Control of an error %q; want no-store", cc)
	}
}

// server serves the responder over HTTP as gwpki's server mounts it.
func (e *env) server(tb testing.TB) *httptest.Server {
	tb.Helper()
	mux := chi.NewRouter()
	mux.Handle("/ocsp", e.r)
	mux.Handle("/ocsp/*", e.r)
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	return srv
}

// registry is a Prometheus registry that tests read single values from.
type registry struct{ *prometheus.Registry }

func newRegistry() registry { return registry{prometheus.NewRegistry()} }

// value returns the metric name's value with the given status label ("" for
// an unlabelled metric), or -1 when there is no such series.
func (r registry) value(tb testing.TB, name, status string) float64 {
	tb.Helper()
	families, err := r.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			label := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "status" {
					label = l.GetValue()
				}
			}
			if label != status {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}
