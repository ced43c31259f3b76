package ocsp_test

import (
	"crypto"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/gwpki/gwpki/ca/ocsp"
)

// readSeed reads testdata/requests/name.
func readSeed(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "requests", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzOCSPRequest drives ServeHTTP with arbitrary bytes as a POST body, as
// the base64 of a GET and as a raw GET path: it must never panic, and must
// answer a well-formed OCSP response (verified against the issuer) or a
// 4xx; GET and POST of the same bytes must give the same OCSP answer.
func FuzzOCSPRequest(f *testing.F) {
	e := newEnv(f, ocsp.Config{UnknownPerSecond: -1})
	good := e.good(f)
	revoked := e.good(f)
	e.r.Revoked(revoked.SerialNumber, time.Now(), xocsp.KeyCompromise)
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA512} {
		f.Add(e.request(f, good.SerialNumber, h))
		f.Add(e.request(f, revoked.SerialNumber, h))
		f.Add(e.request(f, randomSerial(f), h))
	}
	seeds, err := os.ReadDir(filepath.Join("testdata", "requests"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		if strings.HasSuffix(s.Name(), ".der") {
			f.Add(readSeed(f, s.Name()))
		}
	}
	f.Add([]byte{})
	f.Add([]byte("MEowSDBGMEQwQjAJBgUrDgMCGgUABBQ"))
	f.Add([]byte{0x30, 0x80, 0x00, 0x00})

	f.Fuzz(func(t *testing.T, data []byte) {
		post := check(t, e, e.serve(http.MethodPost, "/ocsp", data, nil))
		get := check(t, e, e.serve(http.MethodGet, "/ocsp/"+base64.StdEncoding.EncodeToString(data), nil, nil))
		if post != "" && get != "" && post != get {
			t.Errorf("POST answered %s, GET of the same request %s", post, get)
		}
		// The bytes as a path, as a client that sends anything would.
		req := httptest.NewRequest(http.MethodGet, "http://ocsp.test/", nil)
		req.URL = &url.URL{Path: "/ocsp/" + string(data)}
		w := httptest.NewRecorder()
		e.r.ServeHTTP(w, req)
		check(t, e, w)
	})
}

// check asserts that w is an OCSP answer or a 4xx and names the answer
// ("" for a 4xx).
func check(t *testing.T, e *env, w *httptest.ResponseRecorder) string {
	t.Helper()
	if w.Code >= 400 && w.Code < 500 {
		return ""
	}
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/ocsp-response" {
		t.Fatalf("HTTP %d %q; want 200 application/ocsp-response or a 4xx", w.Code, w.Header().Get("Content-Type"))
	}
	resp, err := xocsp.ParseResponse(w.Body.Bytes(), e.pki.issuer)
	if err != nil {
		if re, ok := err.(xocsp.ResponseError); ok {
			return re.Status.String()
		}
		t.Fatalf("not a valid OCSP response: %v", err)
	}
	return []string{"good", "revoked", "unknown"}[resp.Status] + " " + resp.SerialNumber.String()
}
