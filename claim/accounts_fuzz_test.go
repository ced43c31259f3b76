package claim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/internal/httpapi"
)

// FuzzLogin throws arbitrary bodies at POST /v1/login: it must never panic
// or fail with a 5xx, every refusal must be a 4xx JSON error, and only the
// right credentials may yield a token.
func FuzzLogin(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "login", "*.json"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata/login: %v", err)
	}
	for _, name := range seeds {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	env := newTestEnv(f)
	env.mustCreate(f, "alice", "acme", RoleInstaller, "correct horse")
	r := chi.NewRouter()
	env.a.Routes(r)

	f.Fuzz(func(t *testing.T, body []byte) {
		// Every input starts with fresh attempt limits, so that later
		// inputs still reach the password check.
		env.clock.Advance(time.Hour)
		req := httptest.NewRequest("POST", "/v1/login", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = "192.0.2.1:1234"
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)

		var strict struct {
			Username *string `json:"username"`
			Password *string `json:"password"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		wellFormed := len(body) <= httpapi.MaxBody && dec.Decode(&strict) == nil &&
			strict.Username != nil && strict.Password != nil
		if _, err := dec.Token(); err != io.EOF {
			wellFormed = false // trailing data
		}
		rightCreds := wellFormed && *strict.Username == "alice" && *strict.Password == "correct horse"

		switch {
		case rec.Code == http.StatusOK:
			if !rightCreds {
				t.Fatalf("login(%q) = 200; want a refusal for anything but alice's credentials", body)
			}
			var resp struct{ Token string }
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Token) != tokenLen {
				t.Fatalf("login(%q) = 200 %s; want a token", body, rec.Body)
			}
		case rec.Code >= 400 && rec.Code < 500:
			var e struct{ Error string }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("login(%q) = %d %q; want a JSON error", body, rec.Code, rec.Body)
			}
			if rightCreds {
				t.Fatalf("login(%q) = %d %s; want 200 for alice's credentials", body, rec.Code, rec.Body)
			}
		default:
			t.Fatalf("login(%q) = %d %s; want 200 or 4xx", body, rec.Code, rec.Body)
		}
	})
}
