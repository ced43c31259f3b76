package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/store/storetest"
)

// auditTestServer serves the real accounts API and audit log over TLS on
// 127.0.0.1, the log behind the operator role check as gwpki serve mounts
// it and scoped as gwpki serve scopes it (admins see all, others their
// organisation), with an admin ada (org hq), an operator olga and an
// installer ivy (org acme). It returns the URL, the path of the root
// certificate to pin, and the entries it recorded. The session goes to a
// fresh GWPKI_CONFIG_DIR.
func auditTestServer(t *testing.T) (url, rootPath string, entries []audit.Entry) {
	t.Helper()
	t.Setenv("GWPKI_CONFIG_DIR", filepath.Join(t.TempDir(), "config"))
	db := storetest.OpenTemp(t)
	quiet := slog.New(slog.DiscardHandler)
	accounts, err := claim.NewAccounts(db, claim.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, u := range []claim.NewUser{
		{Username: "ada", Org: "hq", Role: claim.RoleAdmin, Password: "ada password"},
		{Username: "olga", Org: "acme", Role: claim.RoleOperator, Password: "olga password"},
		{Username: "ivy", Org: "acme", Role: claim.RoleInstaller, Password: "ivy password"},
	} {
		if _, err := accounts.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	n := 0
	clock := func() time.Time { n++; return t0.Add(time.Duration(n) * time.Minute) }
	log, err := audit.New(db, audit.WithClock(clock), audit.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []audit.Entry{
		{Actor: "user:ivy", Org: "acme", Action: "claim", Target: "GW-000001", Result: audit.ResultRefused, Source: "192.0.2.9:5000",
			Detail: map[string]string{"why": "wrong code", "attempts": "1"}},
		{Actor: "user:ivy", Org: "acme", Action: "claim", Target: "GW-000001", Result: audit.ResultOK},
		// What a remote caller typed is shown escaped, never raw; an
		// unknown user has no organisation.
		{Actor: "user:\x1b[2Jmallory\tx", Action: "login", Target: "ivy", Result: audit.ResultRefused},
		{Actor: "user:olga", Org: "acme", Action: "revoke", Target: "GW-000001", Result: audit.ResultOK, Source: "192.0.2.7:41234",
			Detail: map[string]string{"reason": "keyCompromise", "certificates": "2"}},
	} {
		got, err := log.Record(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, got)
	}
	r := chi.NewRouter()
	accounts.Routes(r)
	scope := func(r *http.Request) (string, bool) {
		u, ok := claim.UserFromContext(r.Context())
		return u.Org, ok && u.Role == claim.RoleAdmin
	}
	log.Routes(r, scope, accounts.RequireRole(claim.RoleOperator))
	srv := httptest.NewTLSServer(r)
	t.Cleanup(srv.Close)
	rootPath = filepath.Join(t.TempDir(), "root_ca.crt")
	writeLoginTestFile(t, rootPath, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	return srv.URL, rootPath, entries
}

func TestAuditCommandNeedsASession(t *testing.T) {
	auditTestServer(t)
	stdout, stderr, failed := runGwpki(t, "", "audit")
	want := "gwpki: not logged in\nhint: run gwpki login --server URL --user NAME\n"
	if !failed || stdout != "" || stderr != want {
		t.Errorf("gwpki audit without a session: failed=%v stdout %q stderr %q; want %q", failed, stdout, stderr, want)
	}
}

func TestAuditCommandTable(t *testing.T) {
	url, rootPath, _ := auditTestServer(t)
	loginAs(t, url, rootPath, "ada", "ada password")

	stdout, stderr, failed := runGwpki(t, "", "audit")
	want := `SEQ  TIME                  ACTOR                     ORG   ACTION  TARGET     RESULT   DETAILS
4    2026-05-01T10:04:00Z  user:olga                 acme  revoke  GW-000001  ok       certificates=2 reason=keyCompromise
3    2026-05-01T10:03:00Z  "user:\x1b[2Jmallory\tx"  -     login   ivy        refused  -
2    2026-05-01T10:02:00Z  user:ivy                  acme  claim   GW-000001  ok       -
1    2026-05-01T10:01:00Z  user:ivy                  acme  claim   GW-000001  refused  attempts=1 why="wrong code"
`
	if failed || stderr != "" || stdout != want {
		t.Errorf("gwpki audit: failed=%v stderr %q stdout:\n%s\nwant:\n%s", failed, stderr, stdout, want)
	}

	// A page that stops early says how to go on, on stderr.
	stdout, stderr, failed = runGwpki(t, "", "audit", "--limit", "2", "--action", "claim")
	if failed || stderr != "" || !strings.Contains(stdout, "\n2 ") || !strings.Contains(stdout, "\n1 ") || strings.Count(stdout, "\n") != 3 {
		t.Errorf("gwpki audit --limit 2 --action claim: failed=%v stderr %q stdout:\n%s\nwant entries 2 and 1", failed, stderr, stdout)
	}
	stdout, stderr, failed = runGwpki(t, "", "audit", "--limit", "1", "--target", "GW-000001", "--actor", "user:ivy")
	if failed || stderr != "older entries: run again with --before 2\n" || !strings.Contains(stdout, "\n2 ") || strings.Count(stdout, "\n") != 2 {
		t.Errorf("gwpki audit --limit 1 --target GW-000001 --actor user:ivy: failed=%v stderr %q stdout:\n%s\nwant entry 2 and a --before 2 hint",
			failed, stderr, stdout)
	}
	stdout, _, failed = runGwpki(t, "", "audit", "--before", "2", "--target", "GW-000001")
	if failed || !strings.Contains(stdout, "\n1 ") || strings.Count(stdout, "\n") != 2 {
		t.Errorf("gwpki audit --before 2: failed=%v stdout:\n%s\nwant only entry 1", failed, stdout)
	}
	// No match: the header alone.
	stdout, stderr, failed = runGwpki(t, "", "audit", "--action", "unclaim")
	if failed || stderr != "" || !strings.HasPrefix(stdout, "SEQ ") || strings.Count(stdout, "\n") != 1 {
		t.Errorf("gwpki audit --action unclaim: failed=%v stderr %q stdout %q; want the header only", failed, stderr, stdout)
	}
}

func TestAuditCommandJSON(t *testing.T) {
	url, rootPath, entries := auditTestServer(t)
	loginAs(t, url, rootPath, "ada", "ada password")

	stdout, stderr, failed := runGwpki(t, "", "audit", "--json", "--limit", "3")
	if failed || stderr != "" {
		t.Fatalf("gwpki audit --json: failed=%v stderr %q", failed, stderr)
	}
	var page audit.Page
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&page); err != nil || dec.More() {
		t.Fatalf("gwpki audit --json printed %q: %v; want one JSON page only", stdout, err)
	}
	want := audit.Page{Entries: []audit.Entry{entries[3], entries[2], entries[1]}, Next: 2}
	if diff := cmp.Diff(want, page); diff != "" {
		t.Errorf("gwpki audit --json --limit 3 (-want +got):\n%s", diff)
	}

	// An empty page is an empty array, for scripts.
	stdout, _, failed = runGwpki(t, "", "audit", "--json", "--before", "1")
	if want := "{\n  \"entries\": []\n}\n"; failed || stdout != want {
		t.Errorf("gwpki audit --json --before 1: failed=%v stdout %q; want %q", failed, stdout, want)
	}
}

// TestAuditCommandOrg: an operator sees only its organisation's entries and
// is refused another's; an admin picks one with --org.
func TestAuditCommandOrg(t *testing.T) {
	url, rootPath, _ := auditTestServer(t)
	loginAs(t, url, rootPath, "olga", "olga password")
	for _, args := range [][]string{{"audit"}, {"audit", "--org", "acme"}} {
		stdout, stderr, failed := runGwpki(t, "", args...)
		if failed || stderr != "" || strings.Contains(stdout, "mallory") || strings.Count(stdout, " acme ") != 3 ||
			strings.Count(stdout, "\n") != 4 {
			t.Errorf("gwpki %v as olga: failed=%v stderr %q stdout:\n%s\nwant the header and entries 4, 2 and 1 of acme",
				args, failed, stderr, stdout)
		}
	}
	stdout, stderr, failed := runGwpki(t, "", "audit", "--org", "hq")
	want := "gwpki: read audit log: operators see only their organisation's audit entries\n" +
		"hint: leave out org: your organisation's entries are shown\n"
	if !failed || stdout != "" || stderr != want {
		t.Errorf("gwpki audit --org hq as olga: failed=%v stdout %q stderr %q; want %q", failed, stdout, stderr, want)
	}

	loginAs(t, url, rootPath, "ada", "ada password")
	stdout, stderr, failed = runGwpki(t, "", "audit", "--org", "acme", "--action", "claim")
	if failed || stderr != "" || !strings.Contains(stdout, "\n2 ") || !strings.Contains(stdout, "\n1 ") || strings.Count(stdout, "\n") != 3 {
		t.Errorf("gwpki audit --org acme --action claim as ada: failed=%v stderr %q stdout:\n%s\nwant entries 2 and 1", failed, stderr, stdout)
	}
	stdout, _, failed = runGwpki(t, "", "audit", "--org", "hq")
	if failed || !strings.HasPrefix(stdout, "SEQ ") || strings.Count(stdout, "\n") != 1 {
		t.Errorf("gwpki audit --org hq as ada: failed=%v stdout %q; want the header only", failed, stdout)
	}
}

func TestAuditCommandErrors(t *testing.T) {
	url, rootPath, _ := auditTestServer(t)
	loginAs(t, url, rootPath, "ivy", "ivy password")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"audit"}, "gwpki: read audit log: permission denied: needs role operator or admin\nhint: log in as a user with that role\n"},
		{[]string{"audit", "extra"}, "gwpki: unknown command \"extra\" for \"gwpki audit\"\n"},
		{[]string{"audit", "--before", "x"}, "gwpki: invalid argument \"x\" for \"--before\" flag: strconv.ParseUint: parsing \"x\": invalid syntax\n"},
	}
	for _, tc := range tests {
		stdout, stderr, failed := runGwpki(t, "", tc.args...)
		if !failed || stdout != "" || stderr != tc.want {
			t.Errorf("gwpki %v: failed=%v stdout %q stderr %q; want %q", tc.args, failed, stdout, stderr, tc.want)
		}
	}

	// Checked before the server is asked: 0 would otherwise mean the default.
	for _, limit := range []string{"0", "-1", "1001"} {
		stdout, stderr, failed := runGwpki(t, "", "audit", "--limit", limit)
		want := "gwpki: invalid --limit " + limit + "\nhint: use a number from 1 to 1000\n"
		if !failed || stdout != "" || stderr != want {
			t.Errorf("gwpki audit --limit %s: failed=%v stdout %q stderr %q; want %q", limit, failed, stdout, stderr, want)
		}
	}
}
