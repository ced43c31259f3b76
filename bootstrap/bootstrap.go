// Package bootstrap is the service a gateway dials first: over mutual TLS
// with its birth certificate (or a current operational one) it sends a CSR
// and gets its operational certificate, the CA roots, the MQTT endpoint to
// use and when to renew (POST /v1/bootstrap, the fixed JSON of DESIGN.md).
package bootstrap

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/internal/httpapi"
)

// Request is the body of POST /v1/bootstrap.
type Request struct {
	// CSR is the gateway's certificate request, PEM.
	CSR string `json:"csr"`
}

// Answer is the answer of POST /v1/bootstrap; its shape is fixed (gateway
// firmware parses it).
type Answer struct {
	// Certificate is the PEM chain, leaf first.
	Certificate string `json:"certificate"`
	// Roots are the CA roots, PEM.
	Roots string `json:"roots"`
	MQTT  MQTT   `json:"mqtt"`
	// RenewAfter is when to renew (two thirds into the certificate's
	// life), through step-ca's /1.0/renew or another bootstrap.
	RenewAfter time.Time `json:"renew_after"`
}

// MQTT says where the gateway connects.
type MQTT struct {
	URL      string `json:"url"`
	ClientID string `json:"client_id"`
}

// CA is what the service needs of the certificate authority ([ca.Authority]).
type CA interface {
	AuthenticateGateway(r *http.Request) (ca.GatewayIdentity, error)
	Decommissioned(gateway string) (bool, error)
	IssueOperational(ctx context.Context, gateway string, csr *x509.CertificateRequest) (ca.Operational, error)
	Roots() []*x509.Certificate
}

// Registered reports whether a gateway is in the device registry, and the
// serial (decimal) of the birth certificate it is registered with.
type Registered func(ctx context.Context, gateway string) (idevidSerial string, ok bool, err error)

// Limits on bootstraps: a gateway with a good certificate could otherwise
// make the CA issue and store certificates as fast as it asks.
const (
	// MaxPerHour is how many bootstraps one gateway gets in an hour.
	MaxPerHour  = 20
	maxCSRBytes = 8 << 10
)

// Service answers POST /v1/bootstrap.
type Service struct {
	ca         CA
	registered Registered
	pool       *Pool
	roots      string
	log        *slog.Logger
	now        func() time.Time

	metrics *metrics

	mu     sync.Mutex
	recent map[string][]time.Time // bootstraps per gateway in the last hour; a cache, lost on restart
}

// New returns the service.
func New(authority CA, registered Registered, pool *Pool, log *slog.Logger) *Service {
	var roots []byte
	for _, c := range authority.Roots() {
		roots = append(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{ca: authority, registered: registered, pool: pool, roots: string(roots), log: log,
		now: time.Now, recent: map[string][]time.Time{}, metrics: newMetrics()}
}

// Routes mounts POST /v1/bootstrap.
func (s *Service) Routes(r chi.Router) {
	r.Post("/v1/bootstrap", s.handle)
}

func (s *Service) handle(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	res := s.serve(w, r)
	s.metrics.count(res, time.Since(start))
}

// serve answers one bootstrap and returns what it came to.
func (s *Service) serve(w http.ResponseWriter, r *http.Request) result {
	id, err := s.ca.AuthenticateGateway(r)
	if err != nil {
		return s.refuse(w, r, "", err)
	}
	ctx := r.Context()
	gateway := id.Gateway
	switch idevid, ok, err := s.registered(ctx, gateway); {
	case err != nil:
		return s.refuse(w, r, gateway, err)
	case !ok:
		return s.refuse(w, r, gateway, httpapi.Errorf(http.StatusForbidden, "gateway %s is not registered", gateway).
			WithHint("a line station registers every gateway it provisions (gwpki provision)"))
	case id.Birth && id.Serial != idevid:
		// A birth certificate the CA issued but the registry never took
		// (a reissue it refused, or one the station has not registered
		// yet) is no identity: only the registered one bootstraps.
		return s.refuse(w, r, gateway, httpapi.Errorf(http.StatusForbidden,
			"birth certificate %s is not the one gateway %s is registered with", id.Serial, gateway).
			WithHint("a station registers every birth certificate it obtains (gwpki provision, also with --reissue)"))
	}
	switch gone, err := s.ca.Decommissioned(gateway); {
	case err != nil:
		return s.refuse(w, r, gateway, err)
	case gone:
		return s.refuse(w, r, gateway, httpapi.Errorf(http.StatusForbidden, "gateway %s is decommissioned: its birth certificate is revoked", gateway))
	}
	if wait := s.take(gateway); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
		s.refuse(w, r, gateway, httpapi.Errorf(http.StatusTooManyRequests, "gateway %s bootstrapped %d times in the last hour", gateway, MaxPerHour).
			WithHint("keep operational.crt and renew it at renew_after"))
		return resultLimited
	}
	var req Request
	if err := httpapi.DecodeJSON(w, r, &req); err != nil {
		return s.refuse(w, r, gateway, err)
	}
	csr, err := parseCSR(req.CSR)
	if err != nil {
		return s.refuse(w, r, gateway, err)
	}
	op, err := s.ca.IssueOperational(ctx, gateway, csr)
	if err != nil {
		return s.refuse(w, r, gateway, err)
	}
	var chain []byte
	for _, c := range op.Chain {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	endpoint := s.pool.Pick(gateway)
	s.log.Info("gateway bootstrapped", "gateway", gateway, "with", certKind(id), "serial", op.Chain[0].SerialNumber.String(),
		"not_after", op.Chain[0].NotAfter, "mqtt", endpoint)
	httpapi.WriteJSON(w, http.StatusOK, Answer{
		Certificate: string(chain),
		Roots:       s.roots,
		MQTT:        MQTT{URL: endpoint, ClientID: gateway},
		RenewAfter:  op.RenewAfter,
	})
	return resultIssued
}

func certKind(id ca.GatewayIdentity) string {
	if id.Birth {
		return "birth certificate"
	}
	return "certificate " + id.Serial
}

// refuse answers a refused bootstrap and logs it without the request body.
// It returns resultRefused for an answer below 500, resultError otherwise.
func (s *Service) refuse(w http.ResponseWriter, r *http.Request, gateway string, err error) result {
	res := resultError
	var e *httpapi.Error
	if errors.As(err, &e) && e.Status < 500 {
		res = resultRefused
		s.log.Warn("bootstrap refused", "gateway", gateway, "status", e.Status, "reason", e.Msg, "addr", r.RemoteAddr)
	}
	httpapi.WriteError(w, r, err)
	return res
}

// parseCSR reads one PEM certificate request.
func parseCSR(s string) (*x509.CertificateRequest, error) {
	const hint = `send {"csr": "-----BEGIN CERTIFICATE REQUEST-----..."}`
	if s == "" {
		return nil, httpapi.Errorf(http.StatusBadRequest, "csr is required").WithHint(hint)
	}
	if len(s) > maxCSRBytes {
		return nil, httpapi.Errorf(http.StatusBadRequest, "csr longer than %d bytes", maxCSRBytes)
	}
	block, rest := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE REQUEST" || len(bytes.TrimSpace(rest)) > 0 {
		return nil, httpapi.Errorf(http.StatusBadRequest, "csr is not one PEM certificate request").WithHint(hint)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, &httpapi.Error{Status: http.StatusBadRequest, Msg: "csr does not parse", Err: err}
	}
	return csr, nil
}

// take counts a bootstrap of gateway, or returns how long until it may
// bootstrap again.
func (s *Service) take(gateway string) time.Duration {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recent) > 100000 {
		s.prune(now)
	}
	var kept []time.Time
	for _, t := range s.recent[gateway] {
		if now.Sub(t) < time.Hour {
			kept = append(kept, t)
		}
	}
	if len(kept) >= MaxPerHour {
		s.recent[gateway] = kept
		return kept[0].Add(time.Hour).Sub(now)
	}
	s.recent[gateway] = append(kept, now)
	return 0
}

// prune forgets gateways that did not bootstrap in the last hour.
func (s *Service) prune(now time.Time) {
	for g, ts := range s.recent {
		if len(ts) == 0 || now.Sub(ts[len(ts)-1]) >= time.Hour {
			delete(s.recent, g)
		}
	}
}
