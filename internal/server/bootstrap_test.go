package server

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gwpki/gwpki/bootstrap"
	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/provisioning"
)

// provisionGateways runs a line station's batch against ts and returns the
// output folder: one bundle per serial.
func provisionGateways(t *testing.T, ts *testServer, serials ...string) string {
	t.Helper()
	root, err := os.ReadFile(ca.Layout{Dir: ts.dir}.RootCert())
	if err != nil {
		t.Fatal(err)
	}
	client, err := provisioning.NewClient(ts.ready.APIURL, root, ts.station, 4)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := provisioning.RunBatch(context.Background(), provisioning.BatchOptions{
		Client: client, Serials: serials, Model: "PumpCtl-2", Out: out,
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// gatewayClient is an HTTPS client of ts presenting certFile and keyFile.
func (ts *testServer) gatewayClient(t *testing.T, cert tls.Certificate) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	root, _ := os.ReadFile(ca.Layout{Dir: ts.dir}.RootCert())
	pool.AppendCertsFromPEM(root)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert.Certificate != nil {
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func loadPair(t *testing.T, dir string) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, provisioning.CertFile), filepath.Join(dir, provisioning.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bootstrapAs posts a CSR of key for serial with client and returns the
// status and body.
func (ts *testServer) bootstrapAs(t *testing.T, client *http.Client, body string) (int, string) {
	t.Helper()
	resp, err := client.Post(ts.ready.APIURL+"/v1/bootstrap", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func csrBody(t *testing.T, serial string, key crypto.Signer) string {
	t.Helper()
	csr, err := provisioning.GatewayCSR(serial, key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(bootstrap.Request{CSR: string(csr)})
	return string(b)
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestBootstrap takes a provisioned gateway from its birth certificate to
// an operational certificate, renews that through step-ca's /renew and
// bootstraps with it, and checks what bootstrap refuses.
func TestBootstrap(t *testing.T) {
	ts := startServer(t, func(cfg map[string]any) {
		cfg["mqtt_endpoints"] = []string{"mqtts://mqtt-a.example:8883", "mqtts://mqtt-b.example:8883"}
	})
	out := provisionGateways(t, ts, "GW-B1", "GW-B2")
	birth := ts.gatewayClient(t, loadPair(t, filepath.Join(out, "GW-B1")))

	key := newKey(t)
	status, body := ts.bootstrapAs(t, birth, csrBody(t, "GW-B1", key))
	if status != http.StatusOK {
		t.Fatalf("bootstrap with the birth certificate = %d %s", status, body)
	}
	var ans bootstrap.Answer
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ans); err != nil {
		t.Fatalf("answer %s: %v", body, err)
	}
	chain := parseChain(t, ans.Certificate)
	leaf := chain[0]
	root, _ := os.ReadFile(ca.Layout{Dir: ts.dir}.RootCert())
	switch {
	case len(chain) != 2:
		t.Errorf("chain of %d certificates; want leaf and issuing CA", len(chain))
	case leaf.Subject.CommonName != "GW-B1" || ca.GatewaySerial(leaf) != "GW-B1" || len(leaf.URIs) != 1:
		t.Errorf("leaf subject %s, URIs %v; want GW-B1 and its gateway URI only", leaf.Subject, leaf.URIs)
	case !leaf.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()):
		t.Error("leaf is not for the CSR's key")
	case leaf.NotAfter.Sub(leaf.NotBefore) < 7*24*time.Hour || leaf.NotAfter.Sub(leaf.NotBefore) > 7*24*time.Hour+2*time.Minute:
		t.Errorf("lifetime %v; want 7 days", leaf.NotAfter.Sub(leaf.NotBefore))
	case len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth:
		t.Errorf("EKU %v; want clientAuth only", leaf.ExtKeyUsage)
	case ans.Roots != string(root):
		t.Errorf("roots %q; want the root CA", ans.Roots)
	case ans.MQTT.ClientID != "GW-B1" || !strings.HasPrefix(ans.MQTT.URL, "mqtts://mqtt-"):
		t.Errorf("mqtt %+v; want one of the pool's endpoints and client ID GW-B1", ans.MQTT)
	}
	if want := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3); !ans.RenewAfter.Equal(want) {
		t.Errorf("renew_after %v; want two thirds into the life, %v", ans.RenewAfter, want)
	}
	if !hasProvisioner(leaf, ca.BootstrapProvisioner) {
		t.Errorf("leaf does not name the %s provisioner", ca.BootstrapProvisioner)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: poolOf(t, root), Intermediates: poolOfCerts(chain[1:]), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("operational certificate does not verify: %v", err)
	}

	// step-ca's /renew renews it, over mTLS with it, keeping the key.
	op := tls.Certificate{Certificate: [][]byte{leaf.Raw, chain[1].Raw}, PrivateKey: key}
	resp, err := ts.gatewayClient(t, op).Post(ts.ready.APIURL+"/1.0/renew", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	renewBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var renewed struct {
		Crt string `json:"crt"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(renewBody, &renewed) != nil {
		t.Fatalf("/1.0/renew with the operational certificate = %d %s", resp.StatusCode, renewBody)
	}
	newLeaf := parseChain(t, renewed.Crt)[0]
	if newLeaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 || !hasProvisioner(newLeaf, ca.BootstrapProvisioner) || ca.GatewaySerial(newLeaf) != "GW-B1" {
		t.Errorf("renewed certificate %v: want a new serial, still GW-B1's and the bootstrap provisioner's", newLeaf.SerialNumber)
	}
	// The renewed certificate bootstraps too (a gateway that lost its MQTT
	// endpoint, or wants a new key).
	renewedPair := tls.Certificate{Certificate: [][]byte{newLeaf.Raw, chain[1].Raw}, PrivateKey: key}
	if status, body := ts.bootstrapAs(t, ts.gatewayClient(t, renewedPair), csrBody(t, "GW-B1", newKey(t))); status != http.StatusOK {
		t.Errorf("bootstrap with the renewed certificate = %d %s", status, body)
	}

	// The same gateway always goes to the same endpoint.
	_, body2 := ts.bootstrapAs(t, birth, csrBody(t, "GW-B1", key))
	var ans2 bootstrap.Answer
	if json.Unmarshal([]byte(body2), &ans2) != nil || ans2.MQTT.URL != ans.MQTT.URL {
		t.Errorf("second bootstrap sent GW-B1 to %q; first to %q", ans2.MQTT.URL, ans.MQTT.URL)
	}

	// Refusals.
	anon := ts.gatewayClient(t, tls.Certificate{})
	other := provisioningCSRWithCN(t, "GW-B2", newKey(t))
	for _, tc := range []struct {
		name   string
		client *http.Client
		body   string
		status int
		want   string
	}{
		{"no client certificate", anon, csrBody(t, "GW-B1", key), 401, "no gateway client certificate"},
		{"no csr", birth, `{}`, 400, "csr is required"},
		{"not PEM", birth, `{"csr":"hello"}`, 400, "not one PEM certificate request"},
		{"unknown field", birth, `{"csr":"x","key":"y"}`, 400, "unknown field"},
		{"another gateway's name", birth, other, 400, "this gateway is GW-B1"},
		{"malformed JSON", birth, `{`, 400, "malformed JSON"},
	} {
		if status, body := ts.bootstrapAs(t, tc.client, tc.body); status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s; want %d with %q", tc.name, status, body, tc.status, tc.want)
		}
	}

	// A birth certificate of a gateway that was never registered.
	unregisteredKey := newKey(t)
	csr, _ := provisioning.GatewayCSR("GW-LOOSE", unregisteredKey)
	loose := ts.signCert(t, signBody(csr, ts.token(t, "GW-LOOSE"), nil), http.StatusCreated)
	loosePair := tls.Certificate{Certificate: [][]byte{loose.Raw}, PrivateKey: unregisteredKey}
	if status, body := ts.bootstrapAs(t, ts.gatewayClient(t, loosePair), csrBody(t, "GW-LOOSE", newKey(t))); status != 403 || !strings.Contains(body, "not registered") {
		t.Errorf("unregistered gateway: %d %s; want 403 not registered", status, body)
	}

	// A revoked gateway (decommissioned): refused with its birth
	// certificate and with its operational one.
	birth2 := ts.gatewayClient(t, loadPair(t, filepath.Join(out, "GW-B2")))
	key2 := newKey(t)
	status, body = ts.bootstrapAs(t, birth2, csrBody(t, "GW-B2", key2))
	if status != 200 || json.Unmarshal([]byte(body), &ans2) != nil {
		t.Fatalf("bootstrap of GW-B2 = %d %s", status, body)
	}
	chain2 := parseChain(t, ans2.Certificate)
	op2 := ts.gatewayClient(t, tls.Certificate{Certificate: [][]byte{chain2[0].Raw, chain2[1].Raw}, PrivateKey: key2})
	if code, out := ts.apiPost(t, ts.login(t), "/v1/devices/GW-B2/revoke", ""); code != 200 {
		t.Fatalf("revoke GW-B2 = %d %s", code, out)
	}
	for name, c := range map[string]*http.Client{"birth": birth2, "operational": op2} {
		if status, body := ts.bootstrapAs(t, c, csrBody(t, "GW-B2", newKey(t))); status != 403 || !strings.Contains(body, "revoked") {
			t.Errorf("revoked gateway with its %s certificate: %d %s; want 403 revoked", name, status, body)
		}
	}

	// At most MaxPerHour bootstrap requests a gateway in an hour: GW-B1 has
	// made some already, refusals included.
	for i := 0; ; i++ {
		status, body := ts.bootstrapAs(t, birth, csrBody(t, "GW-B1", key))
		if status == http.StatusTooManyRequests {
			break
		}
		if status != http.StatusOK || i == bootstrap.MaxPerHour {
			t.Fatalf("bootstrap %d more = %d %s; want 200 until 429 within %d", i+1, status, body, bootstrap.MaxPerHour)
		}
	}

	// Every answer above is counted: GW-B1 issued 3, then 12 more after
	// its 5 counted refusals, GW-B2 once; refused: no certificate, the 5
	// bad requests, the unregistered and the 2 revoked.
	ts.wantMetrics(t,
		`gwpki_bootstrap_requests_total{result="issued"} 16`,
		`gwpki_bootstrap_requests_total{result="refused"} 9`,
		`gwpki_bootstrap_requests_total{result="limited"} 1`,
		`gwpki_bootstrap_requests_total{result="error"} 0`,
		`gwpki_bootstrap_duration_seconds_count{result="issued"} 16`,
	)
}

func provisioningCSRWithCN(t *testing.T, cn string, key crypto.Signer) string {
	return csrBody(t, cn, key)
}

func parseChain(t *testing.T, s string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatalf("no certificate in %q", s)
	}
	return out
}

func poolOf(t *testing.T, pemBytes []byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no certificate")
	}
	return p
}

func poolOfCerts(cs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cs {
		p.AddCert(c)
	}
	return p
}

// hasProvisioner reports whether c carries step-ca's provisioner extension
// naming name.
func hasProvisioner(c *x509.Certificate, name string) bool {
	oid := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 37476, 9000, 64, 1}
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) && bytes.Contains(e.Value, []byte(name)) {
			return true
		}
	}
	return false
}
