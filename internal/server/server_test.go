package server

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.step.sm/crypto/jose"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/internal/store"
	"github.com/gwpki/gwpki/provisioning"
)

type testServer struct {
	dir     string
	station *provisioning.Station
	ready   Ready
	client  *http.Client
	stop    func()
}

// startServer initialises a data directory with one station, line1, and
// runs the server on loopback ports until the test ends.
func startServer(t testing.TB, edit func(cfg map[string]any)) *testServer {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := Init(ctx, dir, InitOptions{Hostnames: []string{"127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		editConfig(t, dir, edit)
	}
	key, err := ca.AddStation(dir, "line1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	readyFile := filepath.Join(dir, "ready.json")
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Dir: dir, APIAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", ReadyFile: readyFile})
	}()
	ts := &testServer{dir: dir, station: &provisioning.Station{Name: "line1", Key: key}}
	stopped := false
	ts.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with %v", err)
		}
	}
	t.Cleanup(ts.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(readyFile)
		if err == nil && json.Unmarshal(b, &ts.ready) == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("server exited before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("server not ready after 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pool := x509.NewCertPool()
	root, _ := os.ReadFile(ca.Layout{Dir: dir}.RootCert())
	pool.AppendCertsFromPEM(root)
	ts.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	return ts
}

func editConfig(t testing.TB, dir string, edit func(map[string]any)) {
	t.Helper()
	path := ca.Layout{Dir: dir}.Config()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	b, _ = json.Marshal(cfg)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// sign posts a step-ca sign request and returns the status and the body.
func (ts *testServer) sign(t *testing.T, body []byte) (int, string) {
	t.Helper()
	resp, err := ts.client.Post(ts.ready.APIURL+"/1.0/sign", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (ts *testServer) token(t *testing.T, serial string) string {
	t.Helper()
	tok, err := ts.station.Token(serial, provisioning.SignURL(ts.ready.APIURL), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func signBody(csr []byte, ott string, extra map[string]string) []byte {
	m := map[string]string{"csr": string(csr), "ott": ott}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return b
}

func csrPEM(t *testing.T, tpl *x509.CertificateRequest, key any) []byte {
	t.Helper()
	if key == nil {
		key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// foreignToken is a token for line1 signed with a key that is not line1's.
func foreignToken(t *testing.T, ts *testServer, serial string) string {
	t.Helper()
	other, err := jose.GenerateJWK("EC", "P-256", "ES256", "sig", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	other.KeyID = ts.station.Key.KeyID
	fake := &provisioning.Station{Name: "line1", Key: other}
	tok, err := fake.Token(serial, provisioning.SignURL(ts.ready.APIURL), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// unknownKeyToken is a token signed by a key no station has, so step-ca's
// own pipeline answers it.
func unknownKeyToken(t *testing.T, ts *testServer, serial string) string {
	t.Helper()
	key, err := jose.GenerateJWK("EC", "P-256", "ES256", "sig", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := (&provisioning.Station{Name: "line1", Key: key}).Token(serial, provisioning.SignURL(ts.ready.APIURL), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// badSignatureCSR is a CSR of the profile whose signature does not verify.
func badSignatureCSR(t *testing.T, serial string) []byte {
	t.Helper()
	block, _ := pem.Decode(mustCSR(t, serial))
	block.Bytes[len(block.Bytes)-2] ^= 0xff
	return pem.EncodeToMemory(block)
}

func TestSignRefusesBadInput(t *testing.T) {
	ts := startServer(t, nil)
	_, goodCSR, err := provisioning.NewGatewayKey("GW-1")
	if err != nil {
		t.Fatal(err)
	}
	goodToken := ts.token(t, "GW-1")
	// A token is spent by a refused request too, as with step-ca.
	spentToken := ts.token(t, "GW-16")
	if code, body := ts.sign(t, signBody(badSignatureCSR(t, "GW-16"), spentToken, nil)); code != http.StatusBadRequest {
		t.Fatalf("sign with a bad CSR: status %d (%s); want 400", code, body)
	}
	if code, body := ts.sign(t, signBody(goodCSR, goodToken, nil)); code != http.StatusCreated {
		t.Fatalf("good request: status %d (%s); want 201", code, body)
	}

	ekuExt := func() pkix.Extension {
		v, _ := asn1.Marshal([]asn1.ObjectIdentifier{{1, 3, 6, 1, 5, 5, 7, 3, 1}})
		return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 37}, Value: v}
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	uri := func(s string) []*url.URL { return []*url.URL{ca.GatewayURI(s)} }
	expired := func() string {
		tok, err := ts.station.Token("GW-9", provisioning.SignURL(ts.ready.APIURL), time.Now().Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}

	tests := []struct {
		name     string
		body     []byte
		wantCode int
		wantMsg  string
	}{
		{"not JSON", []byte("{csr:"), 400, ""},
		{"malformed CSR", signBody([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"), ts.token(t, "GW-2"), nil), 400, ""},
		{"not a CSR", signBody([]byte("hello"), ts.token(t, "GW-2"), nil), 400, ""},
		{"oversized body", signBody(bytes.Repeat([]byte("A"), 100<<10), ts.token(t, "GW-2"), nil), 413, ""},
		{"DNS SAN outside the profile", signBody(csrPEM(t, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: "GW-3"}, DNSNames: []string{"GW-3"}}, nil), rawToken(t, ts, "GW-3", []string{"GW-3"}), nil),
			400, "exactly one SAN"},
		{"server EKU requested", signBody(csrPEM(t, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: "GW-4"}, URIs: uri("GW-4"), ExtraExtensions: []pkix.Extension{ekuExt()}}, nil),
			ts.token(t, "GW-4"), nil), 400, "extended key usage"},
		{"common name is not the token's serial", signBody(csrPEM(t, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: "GW-OTHER"}, URIs: uri("GW-OTHER")}, nil), ts.token(t, "GW-5"), nil), 403, ""},
		{"serial with a slash", signBody(csrPEM(t, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: "GW/6"}, URIs: uri("GW/6")}, nil), rawToken(t, ts, "GW/6", []string{ca.GatewayURIPrefix + "GW/6"}), nil), 400, "gateway serial"},
		{"weak RSA key", signBody(csrPEM(t, &x509.CertificateRequest{
			Subject: pkix.Name{CommonName: "GW-7"}, URIs: uri("GW-7")}, rsaKey), ts.token(t, "GW-7"), nil), 403, ""},
		{"other lifetime", signBody(mustCSR(t, "GW-8"), ts.token(t, "GW-8"), map[string]string{"notAfter": "1h"}), 403, ""},
		{"expired token", signBody(mustCSR(t, "GW-9"), expired(), nil), 401, ""},
		{"foreign token", signBody(mustCSR(t, "GW-10"), foreignToken(t, ts, "GW-10"), nil), 401, ""},
		{"token of an unknown key", signBody(mustCSR(t, "GW-13"), unknownKeyToken(t, ts, "GW-13"), nil), 401, ""},
		{"bad CSR signature", signBody(badSignatureCSR(t, "GW-14"), ts.token(t, "GW-14"), nil), 400, ""},
		{"replayed token", signBody(mustCSR(t, "GW-1"), goodToken, nil), 401, ""},
		{"token spent on a refused CSR", signBody(mustCSR(t, "GW-16"), spentToken, nil), 401, ""},
		{"token without expiry", signBody(mustCSR(t, "GW-15"), rawTokenWithout(t, ts, "GW-15", []string{ca.GatewayURIPrefix + "GW-15"}, "exp"), nil), 401, ""},
		{"token for another CA", signBody(mustCSR(t, "GW-11"), otherAudience(t, ts, "GW-11"), nil), 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := ts.sign(t, tt.body)
			if code != tt.wantCode {
				t.Errorf("status %d (%s); want %d", code, body, tt.wantCode)
			}
			if tt.wantMsg != "" && !strings.Contains(body, tt.wantMsg) {
				t.Errorf("body %s; want it to mention %q", body, tt.wantMsg)
			}
		})
	}

	// A disabled station is refused within a reload period (the reason is in
	// the server log; step-ca keeps 401 answers vague on purpose).
	if err := ca.SetStationDisabled(ts.dir, "line1", true); err != nil {
		t.Fatal(err)
	}
	issued := 1
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := ts.sign(t, signBody(mustCSR(t, "GW-12"), ts.token(t, "GW-12"), nil))
		if code == http.StatusUnauthorized {
			break
		}
		if code == http.StatusCreated {
			issued++ // before the reload
		}
		if time.Now().After(deadline) {
			t.Fatalf("disabled station: status %d (%s); want 401 within 5s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Nothing refused was stored: only the good certificate (and any issued
	// before the station was disabled) is in the store.
	ts.stop()
	st, err := store.Open(ca.Layout{Dir: ts.dir}.Database(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db, err := ca.NewDB(st)
	if err != nil {
		t.Fatal(err)
	}
	certs, _, err := db.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if certs != issued {
		t.Errorf("store holds %d certificates; want the %d issued", certs, issued)
	}
}

func mustCSR(t *testing.T, serial string) []byte {
	t.Helper()
	_, csr, err := provisioning.NewGatewayKey(serial)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// rawToken signs a line1 token with any subject and SANs, as a station that
// does not use gwpki's client might.
func rawToken(t *testing.T, ts *testServer, serial string, sans []string) string {
	t.Helper()
	return rawTokenWithout(t, ts, serial, sans, "")
}

// rawTokenWithout is rawToken without the claim named drop.
func rawTokenWithout(t *testing.T, ts *testServer, serial string, sans []string, drop string) string {
	t.Helper()
	return rawTokenEdit(t, ts, serial, sans, func(c map[string]any) { delete(c, drop) })
}

// rawTokenEdit is rawToken with its claims changed by edit.
func rawTokenEdit(t *testing.T, ts *testServer, serial string, sans []string, edit func(map[string]any)) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: ts.station.Key.Key},
		new(jose.SignerOptions).WithType("JWT").WithHeader("kid", ts.station.Key.KeyID))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := map[string]any{
		"iss": "line1", "sub": serial, "aud": provisioning.SignURL(ts.ready.APIURL), "jti": serial + "-raw",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Minute).Unix(), "sans": sans,
	}
	edit(claims)
	tok, err := jose.Signed(signer).Claims(claims).CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func otherAudience(t *testing.T, ts *testServer, serial string) string {
	t.Helper()
	tok, err := ts.station.Token(serial, "https://ca.elsewhere.example/1.0/sign", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// metrics returns the server's /metrics.
func (ts *testServer) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(ts.ready.HTTPURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", resp.StatusCode)
	}
	return string(b)
}

// wantMetrics checks that /metrics has each of the lines want.
func (ts *testServer) wantMetrics(t *testing.T, want ...string) {
	t.Helper()
	lines := map[string]bool{}
	for _, l := range strings.Split(ts.metrics(t), "\n") {
		lines[l] = true
	}
	for _, w := range want {
		if !lines[w] {
			t.Errorf("metrics lack %s", w)
		}
	}
}

func TestHealthAndMetrics(t *testing.T) {
	ts := startServer(t, nil)
	if code, body := ts.sign(t, signBody(mustCSR(t, "GW-M"), ts.token(t, "GW-M"), nil)); code != http.StatusCreated {
		t.Fatalf("sign: status %d (%s)", code, body)
	}
	get := func(path string) string {
		resp, err := http.Get(ts.ready.HTTPURL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d", path, resp.StatusCode)
		}
		return string(b)
	}
	if got := get("/healthz"); !strings.Contains(got, `"status":"ok"`) {
		t.Errorf("healthz = %s; want status ok", got)
	}
	metrics := get("/metrics")
	for _, want := range []string{
		`gwpki_ca_certificates_total{kind="sign",provisioner="line1",result="ok"} 1`,
		`gwpki_ca_request_duration_seconds_count{code="Created",route="sign"} 1`,
		`gwpki_store_commit_batch_size_count`,
		`gwpki_store_commit_errors_total 0`,
		`gwpki_mqtt_connected_gateways 0`,
		`gwpki_mqtt_connections_total{result="ok"} 0`,
		`gwpki_mqtt_revocation_drops_total 0`,
		`gwpki_mqtt_publish_limited_total 0`,
		`gwpki_bootstrap_requests_total{result="issued"} 0`,
		`gwpki_claim_attempts_total{result="claimed"} 0`,
		`gwpki_claim_locks_total 0`,
		`gwpki_logins_total{result="ok"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestServerCertificateRenews shows the API certificate is issued by the CA
// and replaced by the server itself before it expires.
func TestServerCertificateRenews(t *testing.T) {
	ts := startServer(t, func(cfg map[string]any) { cfg["server_cert_lifetime"] = "3s" })
	serial := func() (string, time.Time) {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(ts.ready.APIURL, "https://"),
			ts.client.Transport.(*http.Transport).TLSClientConfig)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		leaf := conn.ConnectionState().PeerCertificates[0]
		return leaf.SerialNumber.String(), leaf.NotAfter
	}
	first, notAfter := serial()
	if life := time.Until(notAfter); life > 4*time.Second {
		t.Fatalf("server certificate lives %v; want about 3s", life)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if next, _ := serial(); next != first {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("server certificate was not renewed within 10s of a 3s lifetime")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSignRefusalsAreRateLimited: a source that keeps sending refused
// requests is answered 429, without the CA parsing or checking anything.
func TestSignRefusalsAreRateLimited(t *testing.T) {
	ts := startServer(t, nil)
	garbage := []byte(`{"csr":"","ott":"x"}`)
	for i := 0; ; i++ {
		code, body := ts.sign(t, garbage)
		if code == http.StatusTooManyRequests {
			if i < 100 {
				t.Errorf("429 after %d refusals; want at least 100 allowed", i)
			}
			return
		}
		if code != http.StatusBadRequest {
			t.Fatalf("request %d: status %d (%s); want 400 until the limit", i, code, body)
		}
		if i > 200 {
			t.Fatal("no 429 after 200 refused requests")
		}
	}
}
