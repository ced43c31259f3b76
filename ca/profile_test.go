package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"net/url"
	"os"
	"strings"
	"testing"
)

func TestValidateSerial(t *testing.T) {
	for _, s := range []string{"GW-0001", "a", "A.b_c-9", strings.Repeat("x", 64)} {
		if err := ValidateSerial(s); err != nil {
			t.Errorf("ValidateSerial(%q) = %v; want nil", s, err)
		}
	}
	for _, s := range []string{"", "-GW", "GW/1", "GW 1", "GW:1", "ünï", strings.Repeat("x", 65), "GW\x00"} {
		if err := ValidateSerial(s); err == nil {
			t.Errorf("ValidateSerial(%q) = nil; want an error", s)
		}
	}
}

func testCSR(t testing.TB, tpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, tpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func TestValidateIDevIDRequest(t *testing.T) {
	eku := func(oids ...asn1.ObjectIdentifier) []pkix.Extension {
		v, _ := asn1.Marshal(oids)
		return []pkix.Extension{{Id: oidExtExtKeyUsage, Value: v}}
	}
	good := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "GW-1"}, URIs: []*url.URL{GatewayURI("GW-1")}}
	tests := []struct {
		name    string
		tpl     *x509.CertificateRequest
		wantErr string
	}{
		{"profile", good, ""},
		{"clientAuth requested", &x509.CertificateRequest{Subject: good.Subject, URIs: good.URIs, ExtraExtensions: eku(oidClientAuth)}, ""},
		{"no SAN", &x509.CertificateRequest{Subject: good.Subject}, "exactly one SAN"},
		{"DNS SAN", &x509.CertificateRequest{Subject: good.Subject, URIs: good.URIs, DNSNames: []string{"gw"}}, "exactly one SAN"},
		{"other gateway's URI", &x509.CertificateRequest{Subject: good.Subject, URIs: []*url.URL{GatewayURI("GW-2")}}, "exactly one SAN"},
		{"email SAN", &x509.CertificateRequest{Subject: good.Subject, URIs: good.URIs, EmailAddresses: []string{"a@b"}}, "exactly one SAN"},
		{"bad serial", &x509.CertificateRequest{Subject: pkix.Name{CommonName: "GW 1"}}, "gateway serial"},
		{"serverAuth requested", &x509.CertificateRequest{Subject: good.Subject, URIs: good.URIs,
			ExtraExtensions: eku(asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1})}, "extended key usage"},
		{"malformed EKU", &x509.CertificateRequest{Subject: good.Subject, URIs: good.URIs,
			ExtraExtensions: []pkix.Extension{{Id: oidExtExtKeyUsage, Value: []byte{0x30, 0x03, 0x06}}}}, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateIDevIDRequest(testCSR(t, tt.tpl))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got %v; want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got %v; want an error mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzIDevIDRequest feeds arbitrary bytes as a CSR, the untrusted input of
// every station request: parsing and profile checks never panic, and a
// request the profile accepts names exactly its own gateway.
func FuzzIDevIDRequest(f *testing.F) {
	seed, err := os.ReadFile("testdata/idevid.csr")
	if err != nil {
		f.Fatal(err)
	}
	block, _ := pem.Decode(seed)
	f.Add(block.Bytes)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := x509.ParseCertificateRequest(der)
		if err != nil {
			return
		}
		if validateIDevIDRequest(csr) == nil {
			if len(csr.URIs) != 1 || csr.URIs[0].String() != GatewayURIPrefix+csr.Subject.CommonName {
				t.Fatalf("accepted a request naming %v for %q", csr.URIs, csr.Subject.CommonName)
			}
		}
	})
}

func FuzzValidateSerial(f *testing.F) {
	for _, s := range []string{"GW-0001", "", "a/b", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateSerial(s) != nil {
			return
		}
		// An accepted serial round-trips through the gateway URI.
		u := GatewayURI(s)
		if u == nil || u.String() != GatewayURIPrefix+s {
			t.Fatalf("serial %q does not round-trip through its URI: %v", s, u)
		}
	})
}
