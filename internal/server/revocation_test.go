package server

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/gwpki/gwpki/ca"
)

// TestRevocationReachesOCSPAndCRL revokes a gateway through the operators'
// API and checks the next OCSP answer says revoked, and that its CRL shard
// lists the certificate within five seconds.
func TestRevocationReachesOCSPAndCRL(t *testing.T) {
	ts := startServer(t, nil)
	gw1, gw2 := ts.issue(t, "GW-R1"), ts.issue(t, "GW-R2")
	issuer := readCert(t, ca.Layout{Dir: ts.dir}.IntermediateCert())

	// Good, with the cache headers RFC 5019 asks for.
	resp, body := ts.ocspGet(t, gw1, issuer)
	if got := parseOCSP(t, body, gw1, issuer); got.Status != ocsp.Good {
		t.Fatalf("before revocation: OCSP status %d; want good", got.Status)
	}
	for _, h := range []string{"Cache-Control", "ETag", "Last-Modified", "Expires"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("OCSP answer has no %s header", h)
		}
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("Cache-Control %q; want a max-age", cc)
	}

	token := ts.login(t)
	start := time.Now()
	code, out := ts.apiPost(t, token, "/v1/devices/GW-R1/revoke", `{"reason":"keyCompromise"}`)
	if code != http.StatusOK {
		t.Fatalf("revoke: status %d (%s)", code, out)
	}
	// The very next request, POST this time, says revoked.
	got := parseOCSP(t, ts.ocspPost(t, gw1, issuer), gw1, issuer)
	elapsed := time.Since(start)
	if got.Status != ocsp.Revoked || got.RevocationReason != ocsp.KeyCompromise {
		t.Fatalf("after revocation: OCSP status %d reason %d; want revoked, keyCompromise", got.Status, got.RevocationReason)
	}
	if elapsed > time.Second {
		t.Errorf("revoked answer %v after the revocation request began; want within a second", elapsed)
	}
	t.Logf("revocation to revoked OCSP answer: %v", elapsed)
	_, body = ts.ocspGet(t, gw1, issuer)
	if got := parseOCSP(t, body, gw1, issuer); got.Status != ocsp.Revoked {
		t.Errorf("GET after revocation: status %d; want revoked", got.Status)
	}
	_, body = ts.ocspGet(t, gw2, issuer)
	if got := parseOCSP(t, body, gw2, issuer); got.Status != ocsp.Good {
		t.Errorf("the other gateway: status %d; want good", got.Status)
	}

	// The CRL shard named in the certificate lists it within five seconds.
	deadline := start.Add(5 * time.Second)
	for {
		crl := fetchCRL(t, gw1.CRLDistributionPoints[0])
		if err := crl.CheckSignatureFrom(issuer); err != nil {
			t.Fatalf("CRL signature: %v", err)
		}
		if listed(crl, gw1) {
			t.Logf("revocation to CRL listing: %v", time.Since(start))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRL %s does not list %X five seconds after the revocation", gw1.CRLDistributionPoints[0], gw1.SerialNumber)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRevocationAPIRefuses(t *testing.T) {
	ts := startServer(t, nil)
	gw := ts.issue(t, "GW-X1")
	token := ts.login(t)
	tests := []struct {
		name, token, path, body string
		want                    int
	}{
		{"no session", "", "/v1/devices/GW-X1/revoke", "", http.StatusUnauthorized},
		{"unknown gateway", token, "/v1/devices/GW-NONE/revoke", "", http.StatusNotFound},
		{"unknown reason", token, "/v1/devices/GW-X1/revoke", `{"reason":"bored"}`, http.StatusBadRequest},
		{"hold is not final", token, "/v1/devices/GW-X1/revoke", `{"reason":"certificateHold"}`, http.StatusBadRequest},
		{"malformed JSON", token, "/v1/devices/GW-X1/revoke", `{"reason":`, http.StatusBadRequest},
		{"unknown field", token, "/v1/devices/GW-X1/revoke", `{"why":"x"}`, http.StatusBadRequest},
		{"not a serial", token, "/v1/certificates/xyz/revoke", "", http.StatusBadRequest},
		{"unknown certificate", token, "/v1/certificates/12345/revoke", "", http.StatusNotFound},
		{"certificate by hex serial", token, "/v1/certificates/0x" + gw.SerialNumber.Text(16) + "/revoke", "", http.StatusOK},
		{"certificate again", token, "/v1/certificates/" + gw.SerialNumber.String() + "/revoke", "", http.StatusConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, body := ts.apiPost(t, tt.token, tt.path, tt.body); code != tt.want {
				t.Errorf("POST %s: status %d (%s); want %d", tt.path, code, body, tt.want)
			}
		})
	}
	// The gateway's only certificate is revoked already: nothing new.
	code, body := ts.apiPost(t, token, "/v1/devices/GW-X1/revoke", "")
	var resp ca.RevokeResponse
	if code != http.StatusOK || json.Unmarshal([]byte(body), &resp) != nil || len(resp.Revoked) != 0 || resp.AlreadyRevoked != 1 {
		t.Errorf("revoking a revoked gateway: %d %s; want 200 with nothing revoked and 1 already revoked", code, body)
	}
}

// issue gets a birth certificate for serial through the step-ca API.
func (ts *testServer) issue(t *testing.T, serial string) *x509.Certificate {
	t.Helper()
	return ts.signCert(t, signBody(mustCSR(t, serial), ts.token(t, serial), nil), http.StatusCreated)
}

// login logs in as the admin that Init created and returns the bearer token.
func (ts *testServer) login(t *testing.T) string {
	t.Helper()
	pw, err := os.ReadFile(ca.Layout{Dir: ts.dir}.AdminPassword())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"username": AdminUser, "password": strings.TrimSpace(string(pw))})
	code, out := ts.apiPost(t, "", "/v1/login", string(body))
	if code != http.StatusOK {
		t.Fatalf("login: status %d (%s)", code, out)
	}
	var resp struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Token == "" {
		t.Fatalf("login answer %s: %v", out, err)
	}
	return resp.Token
}

func (ts *testServer) apiPost(t *testing.T, token, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.ready.APIURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (ts *testServer) ocspGet(t *testing.T, cert, issuer *x509.Certificate) (*http.Response, []byte) {
	t.Helper()
	der, err := ocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(ts.ready.HTTPURL + "/ocsp/" + url.PathEscape(base64.StdEncoding.EncodeToString(der)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/ocsp-response" {
		t.Fatalf("OCSP GET: status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp, body
}

func (ts *testServer) ocspPost(t *testing.T, cert, issuer *x509.Certificate) []byte {
	t.Helper()
	der, err := ocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(ts.ready.HTTPURL+"/ocsp", "application/ocsp-request", bytes.NewReader(der))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return body
}

func parseOCSP(t *testing.T, body []byte, cert, issuer *x509.Certificate) *ocsp.Response {
	t.Helper()
	r, err := ocsp.ParseResponseForCert(body, cert, issuer)
	if err != nil {
		t.Fatalf("parse OCSP response: %v", err)
	}
	return r
}

func fetchCRL(t *testing.T, u string) *x509.RevocationList {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	der, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", u, resp.StatusCode)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("parse CRL %s: %v", u, err)
	}
	return crl
}

func listed(crl *x509.RevocationList, cert *x509.Certificate) bool {
	for _, e := range crl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return true
		}
	}
	return false
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
