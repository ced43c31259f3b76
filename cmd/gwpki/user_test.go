package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gwpki/gwpki/internal/apiclient"
)

func TestUserCommandsNeedASession(t *testing.T) {
	loginTestServer(t)
	for _, args := range [][]string{
		{"user", "ls"},
		{"user", "add", "bob", "--org", "acme", "--role", "operator"},
		{"user", "disable", "bob"},
	} {
		stdout, stderr, failed := runGwpki(t, "", args...)
		want := "gwpki: not logged in\nhint: run gwpki login --server URL --user NAME\n"
		if !failed || stdout != "" || stderr != want {
			t.Errorf("gwpki %v: failed=%v stdout %q stderr %q; want %q", args, failed, stdout, stderr, want)
		}
	}
}

func TestUserAddGeneratesPassword(t *testing.T) {
	url, rootPath := loginTestServer(t)
	loginAs(t, url, rootPath, "ada", "ada password")

	stdout, stderr, failed := runGwpki(t, "", "user", "add", "bob", "--org", "acme", "--role", "operator")
	if failed {
		t.Fatalf("user add: %s", stderr)
	}
	password := strings.TrimSuffix(stdout, "\n")
	if len(password) != 24 || strings.ContainsAny(password, " \n") {
		t.Fatalf("user add printed %q on stdout; want only a 24-character password", stdout)
	}
	if !strings.Contains(stderr, "created user bob (operator) in organisation acme") || strings.Contains(stderr, password) {
		t.Errorf("user add stderr = %q; want the summary and not the password", stderr)
	}
	// The printed password is the one the server stored.
	loginAs(t, url, rootPath, "bob", password)
	s := loadTestSession(t)
	if s.Username != "bob" || s.Role != "operator" {
		t.Errorf("session after logging in with the printed password: %s (%s); want bob (operator)", s.Username, s.Role)
	}
}

func TestUserAddAndList(t *testing.T) {
	url, rootPath := loginTestServer(t)
	loginAs(t, url, rootPath, "ada", "ada password")
	pwFile := filepath.Join(t.TempDir(), "pw")
	writeLoginTestFile(t, pwFile, "carols password\n")

	stdout, stderr, failed := runGwpki(t, "", "user", "add", "carol", "--org", "acme", "--role", "installer", "--password-file", pwFile)
	if failed || stdout != "" {
		t.Fatalf("user add --password-file: failed=%v stdout %q stderr %q; want success and nothing on stdout", failed, stdout, stderr)
	}

	stdout, stderr, failed = runGwpki(t, "", "user", "ls", "--json")
	if failed {
		t.Fatalf("user ls --json: %s", stderr)
	}
	var users []apiclient.User
	if err := json.Unmarshal([]byte(stdout), &users); err != nil {
		t.Fatalf("user ls --json printed %q: %v", stdout, err)
	}
	var got []string
	for _, u := range users {
		got = append(got, u.Username+"/"+u.Org+"/"+u.Role)
	}
	if want := "ada/hq/admin carol/acme/installer ivy/acme/installer"; strings.Join(got, " ") != want {
		t.Errorf("user ls --json = %v; want %s", got, want)
	}

	stdout, _, failed = runGwpki(t, "", "user", "ls")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if failed || len(lines) != 4 || !strings.HasPrefix(lines[0], "USERNAME") ||
		!strings.Contains(lines[2], "carol") || !strings.Contains(lines[2], "installer") || !strings.Contains(lines[2], "active") {
		t.Errorf("user ls printed:\n%s\nwant a header and three users", stdout)
	}

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"user", "add", "carol", "--org", "acme", "--role", "installer", "--password-file", pwFile},
			"gwpki: add user: user carol already exists\n"},
		{[]string{"user", "add", "dave", "--org", "acme", "--role", "root"},
			"gwpki: invalid role \"root\"\nhint: pass --role installer, operator or admin\n"},
		{[]string{"user", "add", "dave", "--role", "installer"},
			"gwpki: no organisation given\nhint: pass --org ORG\n"},
		{[]string{"user", "add", "Dave", "--org", "acme", "--role", "installer"},
			"gwpki: add user: invalid username\nhint: use 1 to 64 characters of a-z 0-9 . _ -\n"},
		{[]string{"user", "add", "--org", "acme", "--role", "installer"},
			"gwpki: gwpki user add takes exactly one username, got 0 arguments\nhint: usage: gwpki user add USERNAME --org ORG --role installer|operator|admin [--password-file F] [flags]\n"},
		{[]string{"user", "ls", "extra"}, "gwpki: unknown command \"extra\" for \"gwpki user ls\"\n"},
	}
	for _, tc := range tests {
		stdout, stderr, failed := runGwpki(t, "", tc.args...)
		if !failed || stdout != "" || stderr != tc.want {
			t.Errorf("gwpki %v: failed=%v stdout %q stderr %q; want %q", tc.args, failed, stdout, stderr, tc.want)
		}
	}
}

func TestUserCommandsNeedAdmin(t *testing.T) {
	url, rootPath := loginTestServer(t)
	loginAs(t, url, rootPath, "ivy", "ivy password")
	stdout, stderr, failed := runGwpki(t, "", "user", "ls")
	want := "gwpki: list users: permission denied: needs role admin\nhint: log in as a user with that role\n"
	if !failed || stdout != "" || stderr != want {
		t.Errorf("user ls as an installer: failed=%v stdout %q stderr %q; want %q", failed, stdout, stderr, want)
	}
}

func TestUserDisableEnable(t *testing.T) {
	url, rootPath := loginTestServer(t)
	loginAs(t, url, rootPath, "ada", "ada password")
	stdout, stderr, failed := runGwpki(t, "", "user", "disable", "ivy")
	if failed || stdout != "disabled user ivy\n" {
		t.Fatalf("user disable ivy: failed=%v stdout %q stderr %q", failed, stdout, stderr)
	}
	stdout, _, _ = runGwpki(t, "", "user", "ls")
	if !strings.Contains(stdout, "disabled") {
		t.Errorf("user ls after disabling ivy:\n%s\nwant ivy shown disabled", stdout)
	}
	_, stderr, failed = runGwpki(t, "", "user", "disable", "ghost")
	if !failed || stderr != "gwpki: disable user: no such user\n" {
		t.Errorf("user disable ghost: failed=%v stderr %q", failed, stderr)
	}
	if _, stderr, failed := runGwpki(t, "", "user", "enable", "ivy"); failed {
		t.Fatalf("user enable ivy: %s", stderr)
	}
	loginAs(t, url, rootPath, "ivy", "ivy password")
}

func TestUserCommandExpiredSession(t *testing.T) {
	url, rootPath := loginTestServer(t)
	loginAs(t, url, rootPath, "ada", "ada password")
	// Age the saved session as time would.
	path := filepath.Join(os.Getenv("GWPKI_CONFIG_DIR"), "session.json")
	s := loadTestSession(t)
	s.ExpiresAt = time.Now().Add(-time.Minute)
	b, _ := json.Marshal(s)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, failed := runGwpki(t, "", "user", "ls")
	if !failed || !strings.HasPrefix(stderr, "gwpki: list users: load session: session expired") || !strings.HasSuffix(stderr, "hint: run gwpki login again\n") {
		t.Errorf("user ls with an expired session: failed=%v stderr %q", failed, stderr)
	}
}

func loadTestSession(t *testing.T) apiclient.Session {
	t.Helper()
	c, err := apiclient.Load()
	if err != nil {
		t.Fatal(err)
	}
	return c.Session()
}
