package ca_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/provisioning"
)

// TestSignRefusesReissueOfClaimedOrDecommissioned: through the real sign
// route, a station's reissue of a claimed gateway is refused with 409 and
// nothing is signed or revoked; once unclaimed it works; a gateway whose
// birth certificates are all revoked gets no new one, reissue or not.
func TestSignRefusesReissueOfClaimedOrDecommissioned(t *testing.T) {
	a, router, station := newTestAuthority(t)
	a.RevocationRoutes(router, func(*http.Request) string { return "user:admin" })

	var claimed atomic.Bool
	var asked atomic.Int32
	a.SetClaimed(func(_ context.Context, gateway string) (bool, error) {
		asked.Add(1)
		if gateway != "GW-1" {
			t.Errorf("claim check of %q; want GW-1", gateway)
		}
		return claimed.Load(), nil
	})

	sign := func(t *testing.T, gateway string, reissue bool) (int, string, *x509.Certificate) {
		t.Helper()
		_, csr, err := provisioning.NewGatewayKey(gateway)
		if err != nil {
			t.Fatal(err)
		}
		return signCSR(t, router, station, gateway, csr, reissue)
	}

	code, _, first := sign(t, "GW-1", false)
	if code != http.StatusCreated {
		t.Fatalf("first birth certificate: %d", code)
	}
	if asked.Load() != 0 {
		t.Errorf("a first issue asked whether the gateway is claimed; only a reissue needs to")
	}

	// Claimed: refused, with what to do; the birth certificate stands.
	claimed.Store(true)
	code, msg, _ := sign(t, "GW-1", true)
	if code != http.StatusConflict || !strings.Contains(msg, "is claimed") || !strings.Contains(msg, "gwpki unclaim GW-1") {
		t.Errorf("reissue of a claimed gateway = %d %q; want 409 naming the claim and gwpki unclaim", code, msg)
	}
	if gone, err := a.Decommissioned("GW-1"); err != nil || gone {
		t.Errorf("after the refused reissue: decommissioned %v, %v; want the first certificate still current", gone, err)
	}
	if r := certRecord(t, a, first); r.Revoked != nil {
		t.Errorf("the refused reissue revoked the birth certificate (%+v); want it untouched", r.Revoked)
	}

	// The claim check failing: refused, not signed (fail closed), and
	// retryable.
	a.SetClaimed(func(context.Context, string) (bool, error) { return false, errors.New("store down") })
	if code, msg, _ := sign(t, "GW-1", true); code != http.StatusServiceUnavailable || strings.Contains(msg, "store down") {
		t.Errorf("reissue while the claim check fails = %d %q; want 503 without the internal cause", code, msg)
	}

	// Unclaimed: the reissue works and supersedes the first certificate.
	claimed.Store(false)
	a.SetClaimed(func(context.Context, string) (bool, error) { return claimed.Load(), nil })
	code, _, second := sign(t, "GW-1", true)
	if code != http.StatusCreated || second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatalf("reissue of an unclaimed gateway = %d; want 201 and a new certificate", code)
	}
	if r := certRecord(t, a, first); r.Revoked == nil || r.Revoked.ReasonCode != int(ca.ReasonSuperseded) {
		t.Errorf("the replaced certificate: revocation %+v; want superseded", r.Revoked)
	}
	if n := len(certsOf(t, a, "GW-1")); n != 2 {
		t.Errorf("GW-1 has %d certificates; want 2: the refusals signed nothing", n)
	}

	// Decommissioned (gwpki revoke GW-1): no new birth certificate, with a
	// reissue token or without, claimed or not.
	rec := httptest.NewRecorder()
	router.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/devices/GW-1/revoke", strings.NewReader(`{"reason":"keyCompromise"}`)))
	if rec.Code != http.StatusOK {
		t.Fatalf("revoke GW-1: %d %s", rec.Code, rec.Body)
	}
	for _, reissue := range []bool{true, false} {
		code, msg, _ := sign(t, "GW-1", reissue)
		if code != http.StatusConflict || !strings.Contains(msg, "decommissioned gateways stay revoked") {
			t.Errorf("sign for a decommissioned gateway (reissue %v) = %d %q; want 409, decommissioned gateways stay revoked", reissue, code, msg)
		}
	}
	if gone, err := a.Decommissioned("GW-1"); err != nil || !gone {
		t.Errorf("after the refused reissues: decommissioned %v, %v; want still decommissioned", gone, err)
	}
	if n := len(certsOf(t, a, "GW-1")); n != 2 {
		t.Errorf("GW-1 has %d certificates; want 2: the refusals signed nothing", n)
	}

	// Another gateway, never claimed, is not affected.
	if code, _, _ := sign(t, "GW-2", false); code != http.StatusCreated {
		t.Errorf("a new gateway: %d; want 201", code)
	}
}

// signCSR posts a station's sign request for gateway and returns the status,
// the error message and the certificate issued.
func signCSR(t *testing.T, router http.Handler, station *provisioning.Station, gateway string, csr []byte, reissue bool) (int, string, *x509.Certificate) {
	t.Helper()
	var opts []provisioning.TokenOption
	if reissue {
		opts = append(opts, provisioning.WithReissue())
	}
	tok, err := station.Token(gateway, "https://127.0.0.1/1.0/sign", time.Now(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"csr": string(csr), "ott": tok})
	rec := httptest.NewRecorder()
	router.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/1.0/sign", bytes.NewReader(body)))
	var resp struct {
		Crt     string `json:"crt"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatalf("sign answer %d %q: %v", rec.Code, rec.Body, err)
	}
	if rec.Code != http.StatusCreated {
		return rec.Code, resp.Message, nil
	}
	block, _ := pem.Decode([]byte(resp.Crt))
	if block == nil {
		t.Fatalf("sign answer holds no certificate: %s", rec.Body)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Code, "", cert
}

func certsOf(t *testing.T, a *ca.Authority, gateway string) []ca.CertRecord {
	t.Helper()
	recs, err := a.GatewayCertificates(gateway)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func certRecord(t *testing.T, a *ca.Authority, cert *x509.Certificate) ca.CertRecord {
	t.Helper()
	gateway := cert.Subject.CommonName
	for _, r := range certsOf(t, a, gateway) {
		if r.Serial == cert.SerialNumber.String() {
			return r
		}
	}
	t.Fatalf("certificate %s of %s not stored", cert.SerialNumber, gateway)
	return ca.CertRecord{}
}
