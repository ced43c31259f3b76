package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/smallstep/certificates/authority/provisioner"
	"go.step.sm/crypto/x509util"

	"github.com/gwpki/gwpki/internal/testpki"
)

// TestBirthCertMatchesX509 holds the hand-encoded birth certificate to what
// crypto/x509 makes of the same template, byte for byte.
func TestBirthCertMatchesX509(t *testing.T) {
	ca := testpki.NewCA(t, "Birth Test Issuing CA")
	const httpURL = "http://ca.example:8080"
	enc, err := newBirthCertEncoder(ca.Cert, ca.Key, httpURL, httpURL+"/crl/", 256)
	if err != nil || enc == nil {
		t.Fatalf("newBirthCertEncoder: %v, %v", enc, err)
	}
	ext, err := (&provisioner.Extension{Type: provisioner.TypeJWK, Name: "line-1", CredentialID: "kid-1"}).ToExtension()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 26, 3, 4, 5, 600, time.UTC)
	tests := []struct {
		name, gateway string
		serial        *big.Int
		notAfter      time.Time
	}{
		{"printable serial", "GW-000001", big.NewInt(12345), now.Add(20 * 365 * 24 * time.Hour)},
		{"underscore makes UTF8String", "gw_a.b-c", new(big.Int).Lsh(big.NewInt(1), 127), now.Add(time.Hour)},
		{"after 2049 is GeneralizedTime", "A", new(big.Int).SetBytes(bytes.Repeat([]byte{0xff}, 16)), time.Date(2051, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"long serial", string(bytes.Repeat([]byte("Z"), maxSerialLen)), big.NewInt(1), now.Add(time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			der, err := enc.sign(&birthCert{
				gateway: tt.gateway, spki: spki, serial: tt.serial,
				notBefore: now.Add(-backdate), notAfter: tt.notAfter, extra: marshalExtension(ext),
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatalf("parse hand-encoded certificate: %v", err)
			}
			if err := got.CheckSignatureFrom(ca.Cert); err != nil {
				t.Errorf("signature: %v", err)
			}

			skid, err := x509util.GenerateSubjectKeyID(&key.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			uri, _ := url.Parse(GatewayURIPrefix + tt.gateway)
			tpl := &x509.Certificate{
				SerialNumber:          tt.serial,
				Subject:               pkix.Name{CommonName: tt.gateway, SerialNumber: tt.gateway},
				URIs:                  []*url.URL{uri},
				KeyUsage:              x509.KeyUsageDigitalSignature,
				ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
				Policies:              []x509.OID{oidIDevID},
				NotBefore:             now.Add(-backdate),
				NotAfter:              tt.notAfter,
				SubjectKeyId:          skid,
				OCSPServer:            []string{httpURL + "/ocsp"},
				CRLDistributionPoints: []string{httpURL + "/crl/" + CRLShard(tt.serial, 256) + ".crl"},
				ExtraExtensions:       []pkix.Extension{ext},
			}
			wantDER, err := x509.CreateCertificate(rand.Reader, tpl, ca.Cert, &key.PublicKey, ca.Key)
			if err != nil {
				t.Fatal(err)
			}
			want, err := x509.ParseCertificate(wantDER)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.RawTBSCertificate, want.RawTBSCertificate) {
				t.Errorf("TBS differs from crypto/x509's\ngot  %x\nwant %x", got.RawTBSCertificate, want.RawTBSCertificate)
			}
		})
	}
}

func TestBirthCertEncoderOnlyForInProcessP256(t *testing.T) {
	ca := testpki.NewCA(t, "P-384 CA")
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := newBirthCertEncoder(ca.Cert, p384, "http://x", "http://x/crl/", 1)
	if enc != nil || err != nil {
		t.Errorf("newBirthCertEncoder(P-384 key) = %v, %v; want nil, nil (the generic path)", enc, err)
	}
}

func BenchmarkBirthCertSign(b *testing.B) {
	ca := testpki.NewCA(b, "Bench CA")
	enc, err := newBirthCertEncoder(ca.Cert, ca.Key, "http://ca.example:8080", "http://ca.example:8080/crl/", 256)
	if err != nil {
		b.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	ext, _ := (&provisioner.Extension{Type: provisioner.TypeJWK, Name: "line-1", CredentialID: "kid-1"}).ToExtension()
	now := time.Now()
	c := &birthCert{gateway: "GW-000001", spki: spki, serial: big.NewInt(99), notBefore: now, notAfter: now.Add(time.Hour), extra: marshalExtension(ext)}
	for b.Loop() {
		if _, err := enc.sign(c); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRandomSerialGrowsWithTime checks the property the store relies on:
// later serials are larger, and as decimal strings (the store's keys) they
// sort the same way.
func TestRandomSerialGrowsWithTime(t *testing.T) {
	prev, err := randomSerial()
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		time.Sleep(time.Microsecond)
		sn, err := randomSerial()
		if err != nil {
			t.Fatal(err)
		}
		if sn.Cmp(prev) <= 0 || sn.String() <= prev.String() || sn.BitLen() > 127 {
			t.Fatalf("serial %s after %s: want larger, of at most 127 bits, sorting after it as text", sn, prev)
		}
		prev = sn
	}
}
