package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gwpki/gwpki/internal/store/storetest"
)

// TestHealthzStore: /healthz answers 503 with the reason once the store
// cannot commit (here: closed under it), and before that 200.
func TestHealthzStore(t *testing.T) {
	st := storetest.OpenTemp(t)
	h := healthHandler(func() error { return nil }, (&storeHealth{st: st}).check)
	get := func() (int, map[string]string) {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest("GET", "/healthz", nil))
		var body map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("healthz body %q: %v", rec.Body.String(), err)
		}
		return rec.Code, body
	}
	if code, body := get(); code != http.StatusOK || body["status"] != "ok" {
		t.Fatalf("healthz of a sound store = %d %v; want 200 ok", code, body)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	code, body := get()
	if code != http.StatusServiceUnavailable || body["status"] != "unavailable" || !strings.Contains(body["reason"], "store cannot commit: store closed") {
		t.Errorf("healthz of a closed store = %d %v; want 503 with the store's reason", code, body)
	}

	// The certificates are checked first.
	h = healthHandler(func() error { return errors.New("server certificate expired") }, (&storeHealth{st: st}).check)
	if code, body := get(); code != http.StatusServiceUnavailable || body["reason"] != "server certificate expired" {
		t.Errorf("healthz with an expired certificate = %d %v", code, body)
	}
}
