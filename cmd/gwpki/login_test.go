package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/store/storetest"
	"github.com/gwpki/gwpki/internal/testpki"
)

// loginTestServer serves the real accounts API over TLS on 127.0.0.1 with
// an admin ada and an installer ivy, and returns its URL and the path of its
// root certificate. The session goes to a fresh GWPKI_CONFIG_DIR.
func loginTestServer(t *testing.T) (url, rootPath string) {
	t.Helper()
	t.Setenv("GWPKI_CONFIG_DIR", filepath.Join(t.TempDir(), "config"))
	a, err := claim.NewAccounts(storetest.OpenTemp(t), claim.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []claim.NewUser{
		{Username: "ada", Org: "hq", Role: claim.RoleAdmin, Password: "ada password"},
		{Username: "ivy", Org: "acme", Role: claim.RoleInstaller, Password: "ivy password"},
	} {
		if _, err := a.CreateUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	r := chi.NewRouter()
	a.Routes(r)
	srv := httptest.NewTLSServer(r)
	t.Cleanup(srv.Close)
	rootPath = filepath.Join(t.TempDir(), "root_ca.crt")
	writeLoginTestFile(t, rootPath, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	return srv.URL, rootPath
}

func writeLoginTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// runGwpki runs the real root command with args and stdin and returns what
// it printed, with an error rendered as main prints it.
func runGwpki(t *testing.T, stdin string, args ...string) (stdout, stderr string, failed bool) {
	t.Helper()
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&errOut)
	if err := root.ExecuteContext(context.Background()); err != nil {
		printError(&errOut, err)
		return out.String(), errOut.String(), true
	}
	return out.String(), errOut.String(), false
}

// loginAs logs in through the command and fails the test if it fails.
func loginAs(t *testing.T, url, rootPath, user, password string) {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "pw")
	writeLoginTestFile(t, pwFile, password+"\n")
	if _, stderr, failed := runGwpki(t, "", "login", "--server", url, "--root", rootPath, "--user", user, "--password-file", pwFile); failed {
		t.Fatalf("gwpki login --user %s: %s", user, stderr)
	}
}

func TestLoginCommand(t *testing.T) {
	url, rootPath := loginTestServer(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	writeLoginTestFile(t, pwFile, "ada password\r\nsecond line\n")

	stdout, stderr, failed := runGwpki(t, "", "login", "--server", url, "--root", rootPath, "--user", "ada", "--password-file", pwFile)
	if failed {
		t.Fatalf("login failed: %s", stderr)
	}
	sessionPath := filepath.Join(os.Getenv("GWPKI_CONFIG_DIR"), "session.json")
	want := "logged in as ada (admin) on " + url + "; session saved to " + sessionPath + "\n"
	if stderr != want || stdout != "" {
		t.Errorf("login printed stdout %q stderr %q; want stdout empty and stderr %q", stdout, stderr, want)
	}
	fi, err := os.Stat(sessionPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("session file: %v, mode %v; want mode 0600", err, fi.Mode().Perm())
	}
}

func TestLoginCommandPasswordFromStdin(t *testing.T) {
	url, rootPath := loginTestServer(t)
	// Not a terminal: the first line of stdin is the password.
	_, stderr, failed := runGwpki(t, "ivy password\nnot this\n", "login", "--server", url, "--root", rootPath, "--user", "ivy")
	if failed || !strings.HasPrefix(stderr, "logged in as ivy (installer) on ") {
		t.Errorf("login with the password on stdin: failed=%v stderr %q", failed, stderr)
	}
	_, stderr, failed = runGwpki(t, "", "login", "--server", url, "--root", rootPath, "--user", "ivy")
	if !failed || !strings.Contains(stderr, "empty password") {
		t.Errorf("login with empty stdin: failed=%v stderr %q; want an empty password error", failed, stderr)
	}
}

func TestLoginCommandDefaultRoot(t *testing.T) {
	url, rootPath := loginTestServer(t)
	rootPEM, err := os.ReadFile(rootPath)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	_, stderr, failed := runGwpki(t, "ada password\n", "login", "--server", url, "--user", "ada")
	if !failed || stderr != "gwpki: no root CA certificate given\nhint: pass --root ROOT.pem (certs/root_ca.crt in the server's data directory)\n" {
		t.Errorf("login without --root and without ./gwpki-data: failed=%v stderr %q", failed, stderr)
	}
	writeLoginTestFile(t, filepath.Join(dir, "gwpki-data", "certs", "root_ca.crt"), string(rootPEM))
	if _, stderr, failed := runGwpki(t, "ada password\n", "login", "--server", url, "--user", "ada"); failed {
		t.Errorf("login with ./gwpki-data/certs/root_ca.crt: %s", stderr)
	}
}

func TestLoginCommandErrors(t *testing.T) {
	url, rootPath := loginTestServer(t)
	otherRoot := filepath.Join(t.TempDir(), "other.pem")
	writeLoginTestFile(t, otherRoot, loginOtherRootPEM(t))

	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + l.Addr().String()
	l.Close()

	tests := []struct {
		name  string
		stdin string
		args  []string
		want  []string // lines of stderr
	}{
		{"wrong password", "nope nope\n", []string{"--server", url, "--root", rootPath, "--user", "ada"},
			[]string{"gwpki: log in: invalid username or password"}},
		{"unknown user", "nope nope\n", []string{"--server", url, "--root", rootPath, "--user", "nobody"},
			[]string{"gwpki: log in: invalid username or password"}},
		{"no user", "", []string{"--server", url, "--root", rootPath},
			[]string{"gwpki: no username given", "hint: pass --user NAME"}},
		{"other root", "ada password\n", []string{"--server", url, "--root", otherRoot, "--user", "ada"},
			[]string{"gwpki: log in: the server's certificate is not signed by the pinned root CA",
				"hint: check --root: it must be the root_ca.crt of this server"}},
		{"plain http", "ada password\n", []string{"--server", strings.Replace(url, "https", "http", 1), "--root", rootPath, "--user", "ada"},
			[]string{"gwpki: log in: server URL \"" + strings.Replace(url, "https", "http", 1) + "\": want https://host[:port]"}},
		{"nothing listening", "ada password\n", []string{"--server", closed, "--root", rootPath, "--user", "ada"},
			nil}, // checked below: the message names the OS error
		{"stray argument", "", []string{"--server", url, "--root", rootPath, "--user", "ada", "extra"},
			[]string{`gwpki: unknown command "extra" for "gwpki login"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, failed := runGwpki(t, tc.stdin, append([]string{"login"}, tc.args...)...)
			if !failed || stdout != "" {
				t.Fatalf("login %v: failed=%v stdout %q; want a failure and no stdout", tc.args, failed, stdout)
			}
			if tc.want == nil {
				if !strings.HasPrefix(stderr, "gwpki: log in: reach "+closed) || !strings.Contains(stderr, "hint: is gwpki serve running there?") {
					t.Errorf("stderr = %q; want a connection error with a hint", stderr)
				}
				return
			}
			if want := strings.Join(tc.want, "\n") + "\n"; stderr != want {
				t.Errorf("stderr = %q; want %q", stderr, want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(os.Getenv("GWPKI_CONFIG_DIR"), "session.json")); !os.IsNotExist(err) {
		t.Errorf("session file after failed logins: %v; want none", err)
	}
}

// loginOtherRootPEM returns a self-signed CA that signed none of the test
// servers' certificates.
func loginOtherRootPEM(t *testing.T) string {
	t.Helper()
	return string(testpki.NewCA(t, "other root").PEM)
}
