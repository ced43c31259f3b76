package ocsp_test

import (
	"crypto"
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"

	"github.com/gwpki/gwpki/ca/ocsp"
)

// discard is a ResponseWriter that keeps nothing, so the benchmark measures
// the responder rather than a recorder.
type discard struct {
	h    http.Header
	code int
	n    int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(code int)        { d.code = code }
func (d *discard) Write(b []byte) (int, error) { d.n += len(b); return len(b), nil }

// BenchmarkServeCachedGET is the hot path: a GET for a cached response.
func BenchmarkServeCachedGET(b *testing.B) {
	e := newEnv(b, ocsp.Config{})
	c := e.good(b)
	path := "/ocsp/" + base64.StdEncoding.EncodeToString(e.request(b, c.SerialNumber, crypto.SHA1))
	if w := e.serve(http.MethodGet, path, nil, nil); w.Code != http.StatusOK {
		b.Fatalf("warm-up: HTTP %d", w.Code)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: path}, Header: http.Header{}}
		w := &discard{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			e.r.ServeHTTP(w, req)
			if w.code != http.StatusOK {
				b.Fatalf("HTTP %d", w.code)
			}
		}
	})
}
