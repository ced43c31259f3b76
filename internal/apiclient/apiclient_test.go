package apiclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/store/storetest"
	"github.com/gwpki/gwpki/internal/testpki"
)

// testServer runs the real accounts API over TLS on 127.0.0.1 and returns
// its URL and the PEM of the certificate to pin.
func testServer(t *testing.T) (string, []byte, *claim.Accounts) {
	t.Helper()
	a, err := claim.NewAccounts(storetest.OpenTemp(t), claim.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, u := range []claim.NewUser{
		{Username: "ada", Org: "hq", Role: claim.RoleAdmin, Password: "ada password"},
		{Username: "ivy", Org: "acme", Role: claim.RoleInstaller, Password: "ivy password"},
	} {
		if _, err := a.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	r := chi.NewRouter()
	a.Routes(r)
	srv := httptest.NewTLSServer(r)
	t.Cleanup(srv.Close)
	return srv.URL, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), a
}

// configDir points the session file at a fresh directory that Login must
// create.
func configDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gwpki")
	t.Setenv(ConfigDirEnv, dir)
	return dir
}

func TestLoginSavesSessionAndLoadUsesIt(t *testing.T) {
	dir := configDir(t)
	url, root, _ := testServer(t)
	ctx := context.Background()

	c, err := Login(ctx, url+"/", root, "ada", "ada password")
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	s := c.Session()
	if s.Server != url || s.Username != "ada" || s.Role != "admin" || s.Org != "hq" || len(s.Token) != 43 {
		t.Errorf("session = server %q user %q role %q org %q token of %d chars; want %s, ada, admin, hq, 43",
			s.Server, s.Username, s.Role, s.Org, len(s.Token), url)
	}
	if d := time.Until(s.ExpiresAt); d < 11*time.Hour || d > 12*time.Hour {
		t.Errorf("session expires in %v; want about 12h", d)
	}
	path := filepath.Join(dir, "session.json")
	if c.Path() != path {
		t.Errorf("Path() = %q; want %q", c.Path(), path)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("mode of %s = %v; want %v", p, fi.Mode().Perm(), want)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "ada password") {
		t.Error("session file contains the password")
	}

	loaded, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if loaded.Session() != s {
		t.Errorf("Load() session = %+v; want %+v", loaded.Session(), s)
	}
	var me User
	if err := loaded.Do(ctx, "GET", "/v1/users/me", nil, &me); err != nil {
		t.Fatalf("Do(GET /v1/users/me): %v", err)
	}
	if me.Username != "ada" || me.Role != "admin" {
		t.Errorf("me = %+v; want ada, admin", me)
	}
	var created User
	in := map[string]string{"username": "bob", "org": "acme", "role": "operator", "password": "bobs password"}
	if err := loaded.Do(ctx, "POST", "/v1/users", in, &created); err != nil || created.Username != "bob" {
		t.Errorf("Do(POST /v1/users) = %+v, %v; want bob", created, err)
	}
}

func TestDoReturnsTypedErrors(t *testing.T) {
	configDir(t)
	url, root, _ := testServer(t)
	ctx := context.Background()
	c, err := Login(ctx, url, root, "ivy", "ivy password")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path string
		in           any
		want         Error
	}{
		{"GET", "/v1/users", nil, Error{Status: 403, Message: "permission denied: needs role admin"}},
		{"POST", "/v1/login", map[string]any{"username": "ivy"}, Error{Status: 400, Message: "username and password are required"}},
		{"POST", "/v1/login", map[string]any{"username": "ivy", "password": "x", "extra": 1},
			Error{Status: 400, Message: `malformed JSON request: unknown field "extra"`}},
		// Not a JSON error: chi's own 404.
		{"GET", "/v1/nowhere", nil, Error{Status: 404, Message: "not found"}},
	}
	for _, tc := range tests {
		err := c.Do(ctx, tc.method, tc.path, tc.in, nil)
		var got *Error
		if !errors.As(err, &got) || got.Status != tc.want.Status || got.Message != tc.want.Message || got.Hint != tc.want.Hint {
			t.Errorf("Do(%s %s) error = %#v; want %#v", tc.method, tc.path, err, tc.want)
		}
	}
	// A 401 carries the server's hint.
	c.session.Token = strings.Repeat("A", 43)
	err = c.Do(ctx, "GET", "/v1/users/me", nil, nil)
	var got *Error
	if !errors.As(err, &got) || got.Status != 401 || !strings.Contains(got.Hint, "gwpki login") {
		t.Errorf("Do with an unknown token: %#v; want a 401 with a login hint", err)
	}
}

func TestLoginWrongPasswordSavesNothing(t *testing.T) {
	dir := configDir(t)
	url, root, _ := testServer(t)
	_, err := Login(context.Background(), url, root, "ada", "wrong password")
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Message != "invalid username or password" {
		t.Errorf("Login with a wrong password: %v; want 401 invalid username or password", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "session.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("session file after a failed login: %v; want none", err)
	}
}

func TestLoginTrustsOnlyThePinnedRoot(t *testing.T) {
	dir := configDir(t)
	url, _, _ := testServer(t)
	_, err := Login(context.Background(), url, selfSignedPEM(t), "ada", "ada password")
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("Login pinned to another root: %v; want x509.UnknownAuthorityError", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "session.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("session file after a refused server: %v; want none", err)
	}
	if _, err := Login(context.Background(), url, []byte("not PEM"), "ada", "ada password"); err == nil {
		t.Error("Login with no root certificate succeeded; want an error")
	}
}

func TestClientTLSConfig(t *testing.T) {
	c, err := newClient(Session{Server: "https://example.test", RootPEM: string(selfSignedPEM(t))}, "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.http.Transport.(*http.Transport).TLSClientConfig
	if cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x; want TLS 1.2", cfg.MinVersion)
	}
	if cfg.RootCAs == nil || cfg.InsecureSkipVerify {
		t.Error("client does not pin its root")
	}
}

func TestLoadWithoutSession(t *testing.T) {
	configDir(t)
	if _, err := Load(); !errors.Is(err, ErrNotLoggedIn) {
		t.Errorf("Load() with no session: %v; want ErrNotLoggedIn", err)
	}
}

func TestLoadRefuses(t *testing.T) {
	good := Session{Server: "https://example.test", RootPEM: "x", Username: "ada", Token: "t", ExpiresAt: time.Now().Add(time.Hour)}
	tests := []struct {
		name string
		edit func(*Session)
		mode os.FileMode
		want error
	}{
		{"expired", func(s *Session) { s.ExpiresAt = time.Now().Add(-time.Minute) }, 0o600, ErrSessionExpired},
		{"readable by others", func(*Session) {}, 0o644, nil},
		{"no token", func(s *Session) { s.Token = "" }, 0o600, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := configDir(t)
			s := good
			tc.edit(&s)
			path := filepath.Join(dir, "session.json")
			if err := saveSession(path, s); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Load()
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Load() = %v; want an error (%v)", err, tc.want)
			}
		})
	}
}

func TestLogout(t *testing.T) {
	dir := configDir(t)
	url, root, _ := testServer(t)
	ctx := context.Background()
	c, err := Login(ctx, url, root, "ada", "ada password")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatalf("Logout: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "session.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("session file after logout: %v; want removed", err)
	}
	err = c.Do(ctx, "GET", "/v1/users/me", nil, nil)
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Errorf("old token after logout: %v; want 401", err)
	}
	// Logging out again, with the server's session gone, still succeeds.
	if err := c.Logout(ctx); err != nil {
		t.Errorf("second Logout: %v", err)
	}
}

func TestNormaliseServer(t *testing.T) {
	for in, want := range map[string]string{
		"https://gw.example:8443":  "https://gw.example:8443",
		"https://gw.example:8443/": "https://gw.example:8443",
		"https://127.0.0.1":        "https://127.0.0.1",
	} {
		if got, err := normaliseServer(in); err != nil || got != want {
			t.Errorf("normaliseServer(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"http://gw.example", "gw.example:8443", "https://", "https://h/?a=b", "ftp://h", ":"} {
		if got, err := normaliseServer(in); err == nil {
			t.Errorf("normaliseServer(%q) = %q; want an error", in, got)
		}
	}
}

func TestSessionJSON(t *testing.T) {
	// The file format is read by other tools (the TUI): keep its field names.
	s := Session{Server: "https://h", RootPEM: "pem", Username: "u", Token: "t", ExpiresAt: time.Unix(0, 0).UTC()}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"server":"https://h","root_pem":"pem","username":"u","token":"t","expires_at":"1970-01-01T00:00:00Z"}`
	if string(b) != want {
		t.Errorf("session JSON = %s; want %s", b, want)
	}
}

// selfSignedPEM returns a CA certificate that signed nothing the test
// servers use.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	return testpki.NewCA(t, "other root").PEM
}
