package crl

import (
	"bytes"
	"context"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

func TestServeHTTP(t *testing.T) {
	ca := newTestCA(t, t0)
	now := t0
	cfg := ca.config(DefaultShards)
	cfg.Clock = fixedClock(&now)
	sn := big.NewInt(0x1ff) // shard 00ff
	b, err := New(context.Background(), cfg, newMemSource(Revoked{Serial: sn, RevokedAt: t0.Add(-time.Hour)}))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/crl/", b)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	do := func(method, path string, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}

	now = t0.Add(10 * time.Minute) // a client asks 10 minutes after thisUpdate
	resp, body := do(http.MethodGet, "/crl/00ff.crl")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, b.CRL(0xff)) {
		t.Fatalf("GET /crl/00ff.crl: %d, %d bytes; want 200 and the shard's CRL", resp.StatusCode, len(body))
	}
	if listed(parse(t, body, ca.inter), sn) == nil {
		t.Error("served CRL does not list the shard's revoked serial")
	}
	nextUpdate := t0.Add(DefaultValidity)
	wantMaxAge := strconv.Itoa(int(nextUpdate.Sub(now).Seconds()))
	for name, want := range map[string]string{
		"Content-Type":   "application/pkix-crl",
		"Content-Length": strconv.Itoa(len(body)),
		"Cache-Control":  "public, no-transform, max-age=" + wantMaxAge,
		"Last-Modified":  t0.Format(http.TimeFormat),
		"Expires":        nextUpdate.Format(http.TimeFormat),
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("GET: %s %q; want %q", name, got, want)
		}
	}
	etag := resp.Header.Get("ETag")
	if len(etag) < 3 || etag[0] != '"' || etag[len(etag)-1] != '"' {
		t.Errorf("GET: ETag %q; want a quoted strong tag", etag)
	}

	head, body := do(http.MethodHead, "/crl/00ff.crl")
	if head.StatusCode != http.StatusOK || len(body) != 0 || head.Header.Get("ETag") != etag ||
		head.Header.Get("Content-Length") != resp.Header.Get("Content-Length") {
		t.Errorf("HEAD: %d, %d body bytes, ETag %q, length %q; want 200, none, %q, %q", head.StatusCode, len(body),
			head.Header.Get("ETag"), head.Header.Get("Content-Length"), etag, resp.Header.Get("Content-Length"))
	}

	for _, inm := range []string{etag, `"other", ` + etag, "W/" + etag, "*"} {
		r, body := do(http.MethodGet, "/crl/00ff.crl", "If-None-Match", inm)
		if r.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("GET with If-None-Match %s: %d, %d bytes; want 304, none", inm, r.StatusCode, len(body))
		}
		if r.Header.Get("ETag") != etag || r.Header.Get("Cache-Control") == "" {
			t.Errorf("304: ETag %q, Cache-Control %q; want %q and the cache policy", r.Header.Get("ETag"), r.Header.Get("Cache-Control"), etag)
		}
	}
	if r, _ := do(http.MethodGet, "/crl/00ff.crl", "If-Modified-Since", t0.Format(http.TimeFormat)); r.StatusCode != http.StatusNotModified {
		t.Errorf("GET with If-Modified-Since thisUpdate: %d; want 304", r.StatusCode)
	}
	if r, _ := do(http.MethodGet, "/crl/0000.crl", "If-None-Match", etag); r.StatusCode != http.StatusOK {
		t.Errorf("GET another shard with this shard's ETag: %d; want 200", r.StatusCode)
	}

	// A rebuild changes the ETag.
	now = t0.Add(time.Hour)
	if _, err := b.rebuild(context.Background(), []int{0xff}, "test"); err != nil {
		t.Fatal(err)
	}
	r, body := do(http.MethodGet, "/crl/00ff.crl", "If-None-Match", etag)
	if r.StatusCode != http.StatusOK || r.Header.Get("ETag") == etag || !bytes.Equal(body, b.CRL(0xff)) {
		t.Errorf("GET after a rebuild with the old ETag: %d, ETag %q; want 200 with the new CRL and a new ETag", r.StatusCode, r.Header.Get("ETag"))
	}

	for _, path := range []string{"/crl/0100.crl", "/crl/00FF.crl", "/crl/ff.crl", "/crl/", "/crl/00ff.crl/", "/crl/00ff.pem", "/crl/00ff"} {
		if r, _ := do(http.MethodGet, path); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d; want 404", path, r.StatusCode)
		}
	}
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		r, _ := do(method, "/crl/00ff.crl")
		if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q; want 405, \"GET, HEAD\"", method, r.StatusCode, r.Header.Get("Allow"))
		}
	}
}
