package ca_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/internal/store/storetest"
	"github.com/gwpki/gwpki/provisioning"
)

// FuzzSignRequest posts arbitrary bodies to /1.0/sign of a real authority
// with a station, through its real routes. It is the CA's most exposed
// parser (JSON, PEM, CSR, JWT): it must never panic, never issue a
// certificate for a mutated request, and answer garbage with a 4xx.
func FuzzSignRequest(f *testing.F) {
	router, station := newTestRouter(f)
	tok, err := station.Token("GW-F", "https://127.0.0.1/1.0/sign", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	csr, err := os.ReadFile("testdata/idevid.csr")
	if err != nil {
		f.Fatal(err)
	}
	// The seed's CSR names GW-0001 and its token GW-F: no mutation may make
	// that pair, or anything else without a fresh station token, acceptable.
	mismatched, _ := json.Marshal(map[string]string{"csr": string(csr), "ott": tok})
	f.Add(mismatched)
	f.Add([]byte(`{"csr":"","ott":""}`))
	f.Add([]byte(`{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nMA==\n-----END CERTIFICATE REQUEST-----\n","ott":"a.b.c"}`))
	f.Add([]byte(`{"ott":"eyJhbGciOiJFUzI1NiIsImtpZCI6IngifQ.e30.AA","notAfter":"-1h"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		router.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/1.0/sign", bytes.NewReader(body)))
		if rec.Code < 400 || rec.Code >= 500 {
			t.Fatalf("status %d (%s) for %q; want 4xx", rec.Code, rec.Body, body)
		}
	})
}

// newTestRouter serves the API of an authority in a temporary data
// directory with one station, line1, on a temporary store.
func newTestRouter(tb testing.TB) (http.Handler, *provisioning.Station) {
	_, r, station := newTestAuthority(tb)
	return r, station
}

// newTestAuthority is newTestRouter with the authority itself, and the
// router for more routes.
func newTestAuthority(tb testing.TB) (*ca.Authority, chi.Router, *provisioning.Station) {
	tb.Helper()
	dir := tb.TempDir()
	if _, err := ca.Init(context.Background(), dir, ca.InitOptions{Hostnames: []string{"127.0.0.1"}}); err != nil {
		tb.Fatal(err)
	}
	key, err := ca.AddStation(dir, "line1")
	if err != nil {
		tb.Fatal(err)
	}
	a, err := ca.Open(context.Background(), dir, storetest.OpenTemp(tb), ca.Options{
		PublicHTTPURL: "http://127.0.0.1:8080",
		Logger:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	r := chi.NewRouter()
	a.Routes(r)
	return a, r, &provisioning.Station{Name: "line1", Key: key}
}
