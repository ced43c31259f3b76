package ocsp_test

import (
	"bytes"
	"crypto"
	crand "crypto/rand"
	"encoding/base64"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/gwpki/gwpki/ca/ocsp"
)

// awkwardSerial finds a good serial whose SHA-1 request in standard base64
// has '+', '/' (twice in a row, which a cleaning router would mangle) and
// padding: the characters that clients escape differently.
func awkwardSerial(t *testing.T, e *env) (*big.Int, []byte) {
	t.Helper()
	for range 200_000 {
		b := make([]byte, 8+mrand.IntN(13))
		crand.Read(b)
		b[0] = b[0]&0x7f | 0x01 // positive, full length
		sn := new(big.Int).SetBytes(b)
		der := e.request(t, sn, crypto.SHA1)
		s := base64.StdEncoding.EncodeToString(der)
		if strings.Contains(s, "+") && strings.Contains(s, "//") && strings.HasSuffix(s, "=") {
			e.store.set(sn, ocsp.Entry{Status: ocsp.Good})
			return sn, der
		}
	}
	t.Fatal("no serial with an awkward base64 request")
	return nil, nil
}

func TestGETEncodings(t *testing.T) {
	e := newEnv(t, ocsp.Config{})
	srv := e.server(t)
	sn, der := awkwardSerial(t, e)
	std := base64.StdEncoding.EncodeToString(der)
	urlsafe := base64.URLEncoding.EncodeToString(der)
	tests := map[string]string{
		"standard, as openssl and Go build it": std,
		"unpadded":                             strings.TrimRight(std, "="),
		"URL-safe":                             urlsafe,
		"URL-safe unpadded":                    base64.RawURLEncoding.EncodeToString(der),
		"percent-encoded + / =":                url.QueryEscape(std),
		"percent-encoded as a path segment":    url.PathEscape(std),
		"encoded twice":                        url.QueryEscape(url.QueryEscape(std)),
		"lowercase escapes":                    strings.NewReplacer("%2B", "%2b", "%2F", "%2f", "%3D", "%3d").Replace(url.QueryEscape(std)),
	}
	for name, path := range tests {
		t.Run(name, func(t *testing.T) {
			res, err := http.Get(srv.URL + "/ocsp/" + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("GET /ocsp/%s: HTTP %d; want 200", path, res.StatusCode)
			}
			resp, err := xocsp.ParseResponse(body, e.pki.issuer)
			if err != nil {
				t.Fatalf("GET /ocsp/%s: %v", path, err)
			}
			if resp.Status != xocsp.Good || resp.SerialNumber.Cmp(sn) != 0 {
				t.Errorf("GET /ocsp/%s: status %d for %v; want good for %v", path, resp.Status, resp.SerialNumber, sn)
			}
		})
	}
	// Behind http.StripPrefix the path is just the base64.
	w := e.serve(http.MethodGet, "/"+std, nil, nil)
	if resp, err := e.parse(t, w, nil); err != nil || resp.Status != xocsp.Good {
		t.Errorf("GET /<base64> (prefix stripped): %v; want good", err)
	}
}

func TestPOSTOverHTTP(t *testing.T) {
	e := newEnv(t, ocsp.Config{})
	srv := e.server(t)
	c := e.good(t)
	res, err := http.Post(srv.URL+"/ocsp", "application/ocsp-request", bytes.NewReader(e.request(t, c.SerialNumber, crypto.SHA256)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/ocsp-response" {
		t.Fatalf("POST: HTTP %d %q; want 200 application/ocsp-response", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if res.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d; want %d", res.ContentLength, len(body))
	}
	resp, err := xocsp.ParseResponseForCert(body, c, e.pki.issuer)
	if err != nil || resp.Status != xocsp.Good {
		t.Fatalf("POST answer: %v; want good", err)
	}
}

func TestCacheHeaders(t *testing.T) {
	e := newEnv(t, ocsp.Config{Validity: time.Hour})
	c := e.good(t)
	path := "/ocsp/" + base64.StdEncoding.EncodeToString(e.request(t, c.SerialNumber, crypto.SHA1))
	w := e.serve(http.MethodGet, path, nil, nil)
	resp, err := e.parse(t, w, c)
	if err != nil {
		t.Fatal(err)
	}
	h := w.Header()
	want := map[string]string{
		"Cache-Control": "max-age=3600, public, no-transform, must-revalidate",
		"Last-Modified": resp.ThisUpdate.UTC().Format(http.TimeFormat),
		"Expires":       resp.NextUpdate.UTC().Format(http.TimeFormat),
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %q; want %q", k, got, v)
		}
	}
	etag := h.Get("ETag")
	if len(etag) != 34 || etag[0] != '"' || etag[33] != '"' {
		t.Errorf("ETag %q; want 32 quoted hex digits", etag)
	}

	e.clock.Add(10*time.Minute + 500*time.Millisecond)
	w = e.serve(http.MethodGet, path, nil, nil)
	if got, want := w.Header().Get("Cache-Control"), "max-age=2999, public, no-transform, must-revalidate"; got != want {
		t.Errorf("Cache-Control 10m0.5s later %q; want %q", got, want)
	}
	if got := w.Header().Get("ETag"); got != etag {
		t.Errorf("ETag of the same cached response %q; want %q", got, etag)
	}

	// A re-signed response is a new representation.
	e.clock.Add(25 * time.Minute)
	w = e.serve(http.MethodGet, path, nil, nil)
	if got := w.Header().Get("ETag"); got == etag {
		t.Errorf("ETag unchanged after re-signing")
	}
}

func TestNotModified(t *testing.T) {
	e := newEnv(t, ocsp.Config{})
	c := e.good(t)
	der := e.request(t, c.SerialNumber, crypto.SHA1)
	path := "/ocsp/" + base64.StdEncoding.EncodeToString(der)
	etag := e.serve(http.MethodGet, path, nil, nil).Header().Get("ETag")
	tests := []struct {
		name, inm string
		want      int
	}{
		{"same", etag, http.StatusNotModified},
		{"weak", "W/" + etag, http.StatusNotModified},
		{"in a list", `"abc", ` + etag, http.StatusNotModified},
		{"any", "*", http.StatusNotModified},
		{"other", `"0123"`, http.StatusOK},
	}
	for _, tt := range tests {
		w := e.serve(http.MethodGet, path, nil, http.Header{"If-None-Match": {tt.inm}})
		if w.Code != tt.want {
			t.Errorf("GET with If-None-Match %s (%s): HTTP %d; want %d", tt.inm, tt.name, w.Code, tt.want)
		}
		if tt.want == http.StatusNotModified {
			if w.Body.Len() != 0 || w.Header().Get("ETag") != etag || w.Header().Get("Cache-Control") == "" {
				t.Errorf("304 (%s): body %d bytes, ETag %q, Cache-Control %q; want no body, the ETag and caching headers", tt.name, w.Body.Len(), w.Header().Get("ETag"), w.Header().Get("Cache-Control"))
			}
		}
	}
	w := e.serve(http.MethodPost, "/ocsp", der, http.Header{"If-None-Match": {etag}})
	if w.Code != http.StatusOK {
		t.Errorf("POST with a matching If-None-Match: HTTP %d; want 200 (conditional POST is not a thing here)", w.Code)
	}
}

func TestHTTPRefusals(t *testing.T) {
	e := newEnv(t, ocsp.Config{})
	c := e.good(t)
	der := e.request(t, c.SerialNumber, crypto.SHA1)
	tests := []struct {
		name         string
		method, path string
		body         []byte
		want         int
	}{
		{"PUT", http.MethodPut, "/ocsp", der, http.StatusMethodNotAllowed},
		{"DELETE", http.MethodDelete, "/ocsp/" + base64.StdEncoding.EncodeToString(der), nil, http.StatusMethodNotAllowed},
		{"body over the limit", http.MethodPost, "/ocsp", make([]byte, ocsp.MaxRequest+1), http.StatusRequestEntityTooLarge},
		{"path over the limit", http.MethodGet, "/ocsp/" + strings.Repeat("A", ocsp.MaxPath), nil, http.StatusRequestURITooLong},
	}
	for _, tt := range tests {
		w := e.serve(tt.method, tt.path, tt.body, nil)
		if w.Code != tt.want {
			t.Errorf("%s: HTTP %d; want %d", tt.name, w.Code, tt.want)
		}
	}
	if w := e.serve(http.MethodPut, "/ocsp", der, nil); w.Header().Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("405 Allow %q; want GET, HEAD, POST", w.Header().Get("Allow"))
	}
	// Exactly the limit is parsed (and refused as malformed, being zeros).
	e.wantError(t, e.serve(http.MethodPost, "/ocsp", make([]byte, ocsp.MaxRequest), nil), xocsp.Malformed)

	w := e.serve(http.MethodHead, "/ocsp/"+base64.StdEncoding.EncodeToString(der), nil, nil)
	if w.Code != http.StatusOK || w.Header().Get("ETag") == "" {
		t.Errorf("HEAD: HTTP %d, ETag %q; want 200 with headers", w.Code, w.Header().Get("ETag"))
	}
}

func TestMetrics(t *testing.T) {
	reg := newRegistry()
	e := newEnv(t, ocsp.Config{Registerer: reg, UnknownPerSecond: 1, UnknownBurst: 1})
	c := e.good(t)
	e.status(t, c, crypto.SHA1)
	e.status(t, c, crypto.SHA1)
	e.r.Revoked(e.good(t).SerialNumber, time.Now(), 0)
	e.post(e.request(t, randomSerial(t), crypto.SHA1))
	e.post(e.request(t, randomSerial(t), crypto.SHA1))
	e.post([]byte("junk"))
	want := map[string]float64{"good": 2, "unknown": 1, "try_later": 1, "malformed": 1, "revoked": 0}
	for status, n := range want {
		if got := reg.value(t, "gwpki_ocsp_responses_total", status); got != n {
			t.Errorf("gwpki_ocsp_responses_total{status=%q} = %v; want %v", status, got, n)
		}
	}
	if got := reg.value(t, "gwpki_ocsp_cache_entries", ""); got != 5 {
		t.Errorf("gwpki_ocsp_cache_entries = %v; want 5 (one good, four forms of one revocation)", got)
	}
	if _, err := ocsp.New(ocsp.Config{Issuer: e.pki.issuer, IssuerKey: e.pki.issuerKey, Source: e.store, Registerer: reg}); err == nil {
		t.Error("second responder on the same registry: no error")
	}
}
