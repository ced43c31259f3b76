package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/store/storetest"
)

// TestAuditScope checks that auditScope lets admins see every organisation
// and scopes everyone else to their own, as the accounts' middleware
// authenticated them.
func TestAuditScope(t *testing.T) {
	accounts, err := claim.NewAccounts(storetest.OpenTemp(t), claim.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []claim.NewUser{
		{Username: "ada", Org: "hq", Role: claim.RoleAdmin, Password: "ada password"},
		{Username: "olga", Org: "acme", Role: claim.RoleOperator, Password: "olga password"},
	} {
		if _, err := accounts.CreateUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	r := chi.NewRouter()
	accounts.Routes(r)
	r.With(accounts.RequireRole()).Get("/scope", func(w http.ResponseWriter, r *http.Request) {
		org, all := auditScope(r)
		fmt.Fprintf(w, "%s %v", org, all)
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)

	for _, tc := range []struct{ user, want string }{
		{"ada", "hq true"},
		{"olga", "acme false"},
	} {
		body, _ := json.Marshal(map[string]string{"username": tc.user, "password": tc.user + " password"})
		resp, err := http.Post(srv.URL+"/v1/login", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var session struct{ Token string }
		err = json.NewDecoder(resp.Body).Decode(&session)
		resp.Body.Close()
		if err != nil || session.Token == "" {
			t.Fatalf("log in as %s: status %d, %v", tc.user, resp.StatusCode, err)
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/scope", nil)
		req.Header.Set("Authorization", "Bearer "+session.Token)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != tc.want {
			t.Errorf("auditScope as %s = %q; want %q", tc.user, got, tc.want)
		}
	}

	// Without an authenticated user: no organisation, not all.
	if org, all := auditScope(httptest.NewRequest(http.MethodGet, "/v1/audit", nil)); org != "" || all {
		t.Errorf("auditScope without a user = %q, %v; want \"\", false", org, all)
	}
}
