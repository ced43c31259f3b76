package ocsp_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"net/http"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/gwpki/gwpki/ca/ocsp"
	"github.com/gwpki/gwpki/internal/testpki"
)

var oidOCSPNoCheck = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 5}

func TestStatuses(t *testing.T) {
	e := newEnv(t, ocsp.Config{})
	good := e.good(t)
	revoked := leaf(t, e.pki.issuer, e.pki.issuerKey, randomSerial(t))
	revokedAt := time.Date(2026, 3, 1, 12, 30, 15, 0, time.UTC)
	e.store.set(revoked.SerialNumber, ocsp.Entry{Status: ocsp.Revoked, RevokedAt: revokedAt, Reason: xocsp.KeyCompromise})
	unknown := leaf(t, e.pki.issuer, e.pki.issuerKey, randomSerial(t)) // signed, but not in the store

	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		t.Run(h.String(), func(t *testing.T) {
			tests := []struct {
				name   string
				cert   *x509.Certificate
				status int
				valid  time.Duration
			}{
				{"good", good, xocsp.Good, time.Hour},
				{"revoked", revoked, xocsp.Revoked, time.Hour},
				{"unknown", unknown, xocsp.Unknown, time.Minute},
			}
			for _, tt := range tests {
				resp := e.status(t, tt.cert, h)
				if resp.Status != tt.status {
					t.Errorf("%s: status %d; want %d", tt.name, resp.Status, tt.status)
				}
				if resp.SerialNumber.Cmp(tt.cert.SerialNumber) != 0 {
					t.Errorf("%s: serial %x; want %x", tt.name, resp.SerialNumber, tt.cert.SerialNumber)
				}
				if resp.IssuerHash != h {
					t.Errorf("%s: CertID hash %v; want %v, the request's", tt.name, resp.IssuerHash, h)
				}
				now := e.clock.Now().UTC().Truncate(time.Second)
				if !resp.ThisUpdate.Equal(now) || !resp.NextUpdate.Equal(now.Add(tt.valid)) {
					t.Errorf("%s: thisUpdate %v nextUpdate %v; want %v and %v later", tt.name, resp.ThisUpdate, resp.NextUpdate, now, tt.valid)
				}
				if len(resp.Extensions) != 0 {
					t.Errorf("%s: single extensions %v; want none (no nonce)", tt.name, resp.Extensions)
				}
				checkResponderCert(t, e, resp.Certificate)
			}
		})
	}
	resp := e.status(t, revoked, crypto.SHA1)
	if !resp.RevokedAt.Equal(revokedAt) || resp.RevocationReason != xocsp.KeyCompromise {
		t.Errorf("revoked at %v for reason %d; want %v, %d", resp.RevokedAt, resp.RevocationReason, revokedAt, xocsp.KeyCompromise)
	}
}

// checkResponderCert checks the delegated responder certificate a response
// carries.
func checkResponderCert(t *testing.T, e *env, c *x509.Certificate) {
	t.Helper()
	if c == nil {
		t.Fatal("response carries no responder certificate")
	}
	if err := c.CheckSignatureFrom(e.pki.issuer); err != nil {
		t.Errorf("responder certificate not signed by the issuer: %v", err)
	}
	if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != x509.ExtKeyUsageOCSPSigning {
		t.Errorf("responder EKU %v; want OCSPSigning only", c.ExtKeyUsage)
	}
	if c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("responder key usage %v; want digitalSignature", c.KeyUsage)
	}
	if c.IsCA {
		t.Error("responder certificate is a CA")
	}
	if want := "Test Issuing CA OCSP responder"; c.Subject.CommonName != want {
		t.Errorf("responder CN %q; want %q", c.Subject.CommonName, want)
	}
	if c.NotAfter.After(e.pki.issuer.NotAfter) {
		t.Errorf("responder NotAfter %v after the issuer's %v", c.NotAfter, e.pki.issuer.NotAfter)
	}
	nocheck := false
	for _, x := range c.Extensions {
		if x.Id.Equal(oidOCSPNoCheck) {
			nocheck = bytes.Equal(x.Value, []byte{0x05, 0x00})
		}
	}
	if !nocheck {
		t.Error("responder certificate lacks id-pkix-ocsp-nocheck with a NULL value")
	}
	if _, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || c.PublicKeyAlgorithm != x509.ECDSA {
		t.Errorf("responder key algorithm %v; want ECDSA P-256", c.PublicKeyAlgorithm)
	}
}

func TestUnauthorized(t *testing.T) {
	e := newEnv(t, ocsp.Config{})
	foreign := testpki.NewCA(t, "Test Issuing CA") // same name, other key
	stranger := leaf(t, foreign.Cert, foreign.Key, randomSerial(t))
	e.store.set(stranger.SerialNumber, ocsp.Entry{Status: ocsp.Good}) // the serial is ours too
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		e.wantError(t, e.post(requestFor(t, foreign.Cert, stranger.SerialNumber, h)), xocsp.Unauthorized)
	}

	// The right key hash under another name, and a CertID whose hashes
	// are of the wrong algorithm's length.
	own := e.request(t, stranger.SerialNumber, crypto.SHA1)
	req, err := xocsp.ParseRequest(own)
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*xocsp.Request){
		"other name":   func(r *xocsp.Request) { r.IssuerNameHash = bytes.Repeat([]byte{1}, 20) },
		"sha256 label": func(r *xocsp.Request) { r.HashAlgorithm = crypto.SHA256 },
	} {
		r := *req
		mutate(&r)
		der, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) { e.wantError(t, e.post(der), xocsp.Unauthorized) })
	}
}

func TestMalformed(t *testing.T) {
	e := newEnv(t, ocsp.Config{})
	good := e.request(t, e.good(t).SerialNumber, crypto.SHA1)
	tests := map[string]struct {
		method, path string
		body         []byte
	}{
		"empty POST":         {http.MethodPost, "/ocsp", []byte{}},
		"garbage POST":       {http.MethodPost, "/ocsp", []byte("hello, responder")},
		"trailing data":      {http.MethodPost, "/ocsp", append(append([]byte{}, good...), 0)},
		"truncated":          {http.MethodPost, "/ocsp", good[:len(good)-1]},
		"GET without a path": {http.MethodGet, "/ocsp", nil},
		"GET slash":          {http.MethodGet, "/ocsp/", nil},
		"GET bad base64":     {http.MethodGet, "/ocsp/MEow!!!", nil},
		"GET base64 garbage": {http.MethodGet, "/ocsp/aGVsbG8=", nil},
		"GET bad escape":     {http.MethodGet, "/ocsp/ME%zz", nil},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			e.wantError(t, e.serve(tt.method, tt.path, tt.body, nil), xocsp.Malformed)
		})
	}
	// A request with a wrong signature or an unsupported hash must not
	// crash the parser either; openssl's signed request is refused.
	signed := readSeed(t, "openssl-signed.der")
	e.wantError(t, e.post(signed), xocsp.Malformed)
}

func TestSeveralCertificatesAnswersTheFirst(t *testing.T) {
	e := newEnv(t, ocsp.Config{})
	first, second := e.good(t), e.good(t)
	der := twoCertRequest(t, e, first.SerialNumber, second.SerialNumber)
	resp, err := e.parse(t, e.post(der), first)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != xocsp.Good || resp.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Errorf("answer for %x status %d; want good for the first, %x", resp.SerialNumber, resp.Status, first.SerialNumber)
	}
}

// twoCertRequest builds an OCSPRequest whose requestList names two serials,
// by splicing the single requests x/crypto makes.
func twoCertRequest(t *testing.T, e *env, a, b *big.Int) []byte {
	t.Helper()
	single := func(sn *big.Int) asn1.RawValue {
		// OCSPRequest { TBSRequest { requestList { Request } } }
		var req, tbs, list asn1.RawValue
		mustUnmarshal(t, e.request(t, sn, crypto.SHA1), &req)
		mustUnmarshal(t, req.Bytes, &tbs)
		mustUnmarshal(t, tbs.Bytes, &list)
		var one asn1.RawValue
		mustUnmarshal(t, list.Bytes, &one)
		return one
	}
	ra, rb := single(a), single(b)
	list := asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: append(append([]byte{}, ra.FullBytes...), rb.FullBytes...)}
	listDER, _ := asn1.Marshal(list)
	tbsDER, _ := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: listDER})
	der, err := asn1.Marshal(asn1.RawValue{Tag: asn1.TagSequence, IsCompound: true, Bytes: tbsDER})
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func mustUnmarshal(t *testing.T, der []byte, v any) {
	t.Helper()
	if _, err := asn1.Unmarshal(der, v); err != nil {
		t.Fatal(err)
	}
}

func TestCacheHitSignsNothing(t *testing.T) {
	e := newEnv(t, ocsp.Config{})
	c := e.good(t)
	req := e.request(t, c.SerialNumber, crypto.SHA1)
	first := e.post(req).Body.Bytes()
	e.clock.Add(10 * time.Minute)
	second := e.post(req).Body.Bytes()
	if !bytes.Equal(first, second) {
		t.Error("second answer differs from the first; want the cached bytes")
	}
	if n := e.store.lookups.Load(); n != 1 {
		t.Errorf("%d source lookups for two requests; want 1", n)
	}
	// The other hash algorithm is its own entry.
	e.status(t, c, crypto.SHA256)
	e.status(t, c, crypto.SHA256)
	if n := e.store.lookups.Load(); n != 2 {
		t.Errorf("%d source lookups after SHA-256 requests; want 2", n)
	}
}

func TestUnknownIsNotCached(t *testing.T) {
	e := newEnv(t, ocsp.Config{})
	sn := randomSerial(t)
	c := leaf(t, e.pki.issuer, e.pki.issuerKey, sn)
	if s := e.status(t, c, crypto.SHA1).Status; s != xocsp.Unknown {
		t.Fatalf("status %d before issuance; want unknown", s)
	}
	e.store.set(sn, ocsp.Entry{Status: ocsp.Good}) // issued now
	if s := e.status(t, c, crypto.SHA1).Status; s != xocsp.Good {
		t.Errorf("status %d right after issuance; want good", s)
	}
}

func TestRefreshBeforeStale(t *testing.T) {
	e := longEnv(t, ocsp.Config{Validity: time.Hour})
	c := e.good(t)
	first := e.status(t, c, crypto.SHA1)

	e.clock.Add(29 * time.Minute)
	if got := e.status(t, c, crypto.SHA1); !got.ThisUpdate.Equal(first.ThisUpdate) {
		t.Errorf("re-signed at %v before half the validity; want the cached response", got.ThisUpdate)
	}
	e.clock.Add(2 * time.Minute) // past half: the first use re-signs
	second := e.status(t, c, crypto.SHA1)
	if !second.ThisUpdate.After(first.ThisUpdate) || second.NextUpdate.Sub(second.ThisUpdate) != time.Hour {
		t.Errorf("after half the validity: thisUpdate %v nextUpdate %v; want a fresh hour", second.ThisUpdate, second.NextUpdate)
	}

	// Unused for longer than the validity (and no Run): still never stale.
	e.clock.Add(3 * time.Hour)
	now := e.clock.Now()
	third := e.status(t, c, crypto.SHA1)
	if !third.NextUpdate.After(now) {
		t.Errorf("served nextUpdate %v at %v; want a response that is not stale", third.NextUpdate, now)
	}
	if n := e.store.lookups.Load(); n != 3 {
		t.Errorf("%d source lookups; want 3 (first, refresh, after expiry)", n)
	}
}

func TestSourceError(t *testing.T) {
	e := newEnv(t, ocsp.Config{})
	c := e.good(t)
	e.store.err = errTest
	e.wantError(t, e.post(e.request(t, c.SerialNumber, crypto.SHA1)), xocsp.InternalError)
	e.store.err = nil
	if s := e.status(t, c, crypto.SHA1).Status; s != xocsp.Good {
		t.Errorf("status %d once the source answers; want good (errors are not cached)", s)
	}
}

var errTest = errorString("store is down")

type errorString string

func (e errorString) Error() string { return string(e) }

func TestUnknownRateLimit(t *testing.T) {
	e := newEnv(t, ocsp.Config{UnknownPerSecond: 1, UnknownBurst: 2})
	unknown := func() []byte { return e.request(t, randomSerial(t), crypto.SHA1) }
	for i := range 2 {
		if _, err := e.parse(t, e.post(unknown()), nil); err != nil {
			t.Fatalf("unknown answer %d within the burst: %v", i, err)
		}
	}
	e.wantError(t, e.post(unknown()), xocsp.TryLater)
	// Known serials are not limited, cached or not.
	if s := e.status(t, e.good(t), crypto.SHA1).Status; s != xocsp.Good {
		t.Errorf("good certificate while unknowns are limited: status %d", s)
	}
	e.clock.Add(time.Second)
	if _, err := e.parse(t, e.post(unknown()), nil); err != nil {
		t.Errorf("unknown answer a second later: %v; want one token back", err)
	}
	e.wantError(t, e.post(unknown()), xocsp.TryLater)
}

func TestNoUnknownLimit(t *testing.T) {
	e := newEnv(t, ocsp.Config{UnknownPerSecond: -1})
	for i := range 300 {
		if _, err := e.parse(t, e.post(e.request(t, big.NewInt(int64(i+1)), crypto.SHA1)), nil); err != nil {
			t.Fatalf("unknown answer %d without a limit: %v", i, err)
		}
	}
}

func TestNew(t *testing.T) {
	p := newPKI(t, time.Now().Add(time.Hour))
	other := testpki.NewCA(t, "Other")
	expired := newPKI(t, time.Now().Add(-time.Minute))
	s := newStore()
	tests := map[string]ocsp.Config{
		"no issuer":      {IssuerKey: p.issuerKey, Source: s},
		"no key":         {Issuer: p.issuer, Source: s},
		"no source":      {Issuer: p.issuer, IssuerKey: p.issuerKey},
		"wrong key":      {Issuer: p.issuer, IssuerKey: other.Key, Source: s},
		"expired issuer": {Issuer: expired.issuer, IssuerKey: expired.issuerKey, Source: s},
		"negative":       {Issuer: p.issuer, IssuerKey: p.issuerKey, Source: s, Validity: -time.Second},
	}
	for name, cfg := range tests {
		if _, err := ocsp.New(cfg); err == nil {
			t.Errorf("New with %s: no error", name)
		}
	}
	if _, err := ocsp.New(ocsp.Config{Issuer: p.issuer, IssuerKey: p.issuerKey, Source: s}); err != nil {
		t.Errorf("New with only the required fields: %v", err)
	}
}
