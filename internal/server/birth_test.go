package server

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/provisioning"
)

// TestOneBirthCertificatePerGateway: the same key gets the certificate it
// already has (a line station finishing a batch after a crash), another key
// is refused, and a reissue token replaces the certificate, revoking the old.
func TestOneBirthCertificatePerGateway(t *testing.T) {
	ts := startServer(t, nil)
	_, csr, err := provisioning.NewGatewayKey("GW-B1")
	if err != nil {
		t.Fatal(err)
	}
	first := ts.signCert(t, signBody(csr, ts.token(t, "GW-B1"), nil), http.StatusCreated)

	again := ts.signCert(t, signBody(csr, ts.token(t, "GW-B1"), nil), http.StatusCreated)
	if again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("same key again: serial %X; want the first certificate, %X", again.SerialNumber, first.SerialNumber)
	}
	if code, body := ts.sign(t, signBody(mustCSR(t, "GW-B1"), ts.token(t, "GW-B1"), nil)); code != http.StatusConflict {
		t.Errorf("another key: status %d (%s); want 409", code, body)
	}

	reissue := rawTokenEdit(t, ts, "GW-B1", []string{ca.GatewayURIPrefix + "GW-B1"}, func(c map[string]any) {
		c["reissue"] = true
		c["jti"] = "reissue-1"
	})
	second := ts.signCert(t, signBody(mustCSR(t, "GW-B1"), reissue, nil), http.StatusCreated)
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("reissue answered the old certificate")
	}
	issuer := readCert(t, ca.Layout{Dir: ts.dir}.IntermediateCert())
	if got := parseOCSP(t, ts.ocspPost(t, first, issuer), first, issuer); got.Status != ocsp.Revoked || got.RevocationReason != ocsp.Superseded {
		t.Errorf("the replaced certificate: OCSP status %d reason %d; want revoked, superseded", got.Status, got.RevocationReason)
	}
	if got := parseOCSP(t, ts.ocspPost(t, second, issuer), second, issuer); got.Status != ocsp.Good {
		t.Errorf("the new certificate: OCSP status %d; want good", got.Status)
	}
}

func (ts *testServer) signCert(t *testing.T, body []byte, want int) *x509.Certificate {
	t.Helper()
	code, out := ts.sign(t, body)
	if code != want {
		t.Fatalf("sign: status %d (%s); want %d", code, out, want)
	}
	var resp struct {
		Crt string `json:"crt"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(resp.Crt))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
