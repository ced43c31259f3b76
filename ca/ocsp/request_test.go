package ocsp

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	xocsp "golang.org/x/crypto/ocsp"
)

func seed(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "requests", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// The requests real clients send take the allocation-free path.
func TestParseCanonical(t *testing.T) {
	issuer := &x509.Certificate{
		RawSubject: []byte{0x30, 0x00},
		// SubjectPublicKeyInfo with a 3-byte BIT STRING key.
		RawSubjectPublicKeyInfo: []byte{0x30, 0x0a, 0x30, 0x03, 0x06, 0x01, 0x00, 0x03, 0x03, 0x00, 0x01, 0x02},
	}
	tests := []struct {
		name      string
		der       []byte
		canonical bool
		ok        bool
	}{
		{"openssl -no_nonce", seed(t, "openssl-sha1.der"), true, true},
		{"openssl with nonce", seed(t, "openssl-sha1-nonce.der"), true, true},
		{"openssl -sha256", seed(t, "openssl-sha256.der"), true, true},
		{"openssl two certificates", seed(t, "openssl-two-certs.der"), false, true},
		{"openssl signed", seed(t, "openssl-signed.der"), false, false},
		{"garbage", seed(t, "garbage-http.der"), false, false},
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		for _, sn := range []int64{1, 127, 128, 255, 256, -1, -128, -129, 1 << 40} {
			der, err := xocsp.CreateRequest(&x509.Certificate{SerialNumber: big.NewInt(sn)}, issuer, &xocsp.RequestOptions{Hash: h})
			if err != nil {
				t.Fatal(err)
			}
			tests = append(tests, struct {
				name      string
				der       []byte
				canonical bool
				ok        bool
			}{h.String() + " x/crypto " + big.NewInt(sn).String(), der, true, true})
		}
	}
	for _, tt := range tests {
		var cr certRequest
		if got := parseCanonical(tt.der, &cr); got != tt.canonical {
			t.Errorf("%s: parseCanonical %v; want %v", tt.name, got, tt.canonical)
		}
		if got := parseRequest(tt.der, &cr); got != tt.ok {
			t.Errorf("%s: parseRequest %v; want %v", tt.name, got, tt.ok)
		}
		if tt.ok {
			sameAsXCrypto(t, tt.der, &cr)
		}
	}
}

// sameAsXCrypto checks cr against x/crypto's reading of der.
func sameAsXCrypto(t *testing.T, der []byte, cr *certRequest) {
	t.Helper()
	req, err := xocsp.ParseRequest(der)
	if err != nil {
		t.Fatalf("ParseRequest refuses what parseRequest read: %v", err)
	}
	if req.HashAlgorithm != cr.hash || !bytes.Equal(req.IssuerNameHash, cr.nameHash) ||
		!bytes.Equal(req.IssuerKeyHash, cr.keyHash) || req.SerialNumber.Cmp(serialInt(cr.serial)) != 0 {
		t.Fatalf("read %v %x %x serial %v; ParseRequest reads %v %x %x serial %v",
			cr.hash, cr.nameHash, cr.keyHash, serialInt(cr.serial),
			req.HashAlgorithm, req.IssuerNameHash, req.IssuerKeyHash, req.SerialNumber)
	}
	if !bytes.Equal(serialBytes(req.SerialNumber), cr.serial) {
		t.Fatalf("serial bytes %x; want %x, the same serial's", cr.serial, serialBytes(req.SerialNumber))
	}
}

func TestSerialBytes(t *testing.T) {
	tests := map[int64]string{0: "00", 1: "01", 127: "7f", 128: "0080", 255: "00ff", 256: "0100", -1: "ff", -128: "80", -129: "ff7f"}
	for n, want := range tests {
		if got := hex.EncodeToString(serialBytes(big.NewInt(n))); got != want {
			t.Errorf("serialBytes(%d) = %s; want %s", n, got, want)
		}
		if back := serialInt(serialBytes(big.NewInt(n))); back.Int64() != n {
			t.Errorf("serialInt(serialBytes(%d)) = %v", n, back)
		}
	}
}

// FuzzParseRequest checks that the allocation-free reader never accepts
// what x/crypto/ocsp refuses, never reads it differently, and that
// parseRequest accepts exactly what ParseRequest accepts.
func FuzzParseRequest(f *testing.F) {
	for _, name := range []string{"openssl-sha1.der", "openssl-sha1-nonce.der", "openssl-sha256.der", "openssl-two-certs.der", "openssl-signed.der", "garbage-http.der", "truncated-length.der"} {
		f.Add(seed(f, name))
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		var cr certRequest
		_, refErr := xocsp.ParseRequest(der)
		if parseCanonical(der, &cr) {
			sameAsXCrypto(t, der, &cr)
		}
		if ok := parseRequest(der, &cr); ok != (refErr == nil) {
			t.Fatalf("parseRequest %v; ParseRequest error %v", ok, refErr)
		} else if ok {
			sameAsXCrypto(t, der, &cr)
		}
	})
}
