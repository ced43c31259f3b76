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
	"github.com/gwpki/gwpki/internal/httpapi"
	"github.com/gwpki/gwpki/internal/store/storetest"
)

// devicesTestServer serves the real accounts API and device registry over
// TLS on 127.0.0.1, the registry's read routes behind the operator role
// check as gwpki serve mounts them, with an operator olga and an installer
// ivy, and registers three gateways (one reissued, one with a model that
// the table must quote), with fleet sources that say GW-000003 is online,
// when it was last seen and when its certificate expires, that GW-000002's
// claims are locked and GW-000001's in back-off. It returns the URL, the root certificate to
// pin and the devices, in serial order. The session goes to a fresh
// GWPKI_CONFIG_DIR.
func devicesTestServer(t *testing.T) (url, rootPath string, devices []claim.Device, labels []string) {
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
		{Username: "olga", Org: "acme", Role: claim.RoleOperator, Password: "olga password"},
		{Username: "ivy", Org: "acme", Role: claim.RoleInstaller, Password: "ivy password"},
		{Username: "ada", Org: "maker", Role: claim.RoleAdmin, Password: "ada password"},
	} {
		if _, err := accounts.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	auditLog, err := audit.New(db, audit.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	key := []byte(strings.Repeat("k", claim.ClaimKeySize))
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	n := 0
	clock := func() time.Time { n++; return t0.Add(time.Duration(n) * time.Minute) }
	reg, err := claim.NewRegistry(db, key, auditLog, claim.WithClock(clock), claim.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	reg.SetRetiredCheck(func(context.Context, string) (bool, error) { return false, nil })
	expires := time.Date(2046, 4, 30, 23, 59, 59, 0, time.UTC)
	for i, r := range []struct {
		serial, model, station string
		reissue                bool
	}{
		{"GW-000002", "PumpCtl 3", "line1", false},
		{"GW-000001", `Meter "XL"`, "line2", false},
		{"GW-000003", "PumpCtl 3", "line1", false},
		{"GW-000003", "PumpCtl 3", "repair", true},
	} {
		dev, creds, _, err := reg.Register(ctx, claim.RegisterRequest{
			Serial: r.serial, Model: r.model, Station: r.station, Reissue: r.reissue,
			Cert: claim.CertInfo{Serial: "1000" + string(rune('0'+i)), GatewaySerial: r.serial, Station: r.station, NotAfter: expires.AddDate(0, 0, i)},
		})
		if err != nil {
			t.Fatal(err)
		}
		labels = append(labels, creds.LabelCode)
		if r.reissue {
			devices[len(devices)-1] = dev
		} else {
			devices = append(devices, dev)
		}
	}
	devices[0], devices[1] = devices[1], devices[0]
	seen := time.Date(2026, 5, 2, 8, 0, 3, 0, time.UTC)
	reg.SetFleetSources(claim.FleetSources{
		Online: func(gw string) bool { return gw == "GW-000003" },
		LastSeen: func(_ context.Context, gw string) (time.Time, error) {
			if gw == "GW-000003" {
				return seen, nil
			}
			return time.Time{}, nil
		},
		CertNotAfter: func(_ context.Context, gw string) (time.Time, error) {
			if gw == "GW-000003" {
				return seen.AddDate(0, 0, 7), nil
			}
			return time.Time{}, nil
		},
		// GW-000002 is locked after 20 wrong codes, GW-000001 in back-off
		// after 6.
		ClaimAttempts: func(_ context.Context, gw string) (claim.GatewayAttempts, error) {
			switch gw {
			case "GW-000001":
				return claim.GatewayAttempts{Failures: 6, Total: 6, NextAttempt: seen.Add(time.Minute), LastFailure: seen}, nil
			case "GW-000002":
				return claim.GatewayAttempts{Failures: 1, Total: 20, Locked: true, LastFailure: seen.Add(-time.Hour)}, nil
			}
			return claim.GatewayAttempts{}, nil
		},
	})
	devices[2].Online, devices[2].LastSeen, devices[2].CertNotAfter = true, seen, seen.AddDate(0, 0, 7)
	devices[0].ClaimLock, devices[0].ClaimRetryAfter, devices[0].ClaimFailures, devices[0].ClaimLastFailure = claim.ClaimLockBackoff, seen.Add(time.Minute), 6, seen
	devices[1].ClaimLock, devices[1].ClaimFailures, devices[1].ClaimLastFailure = claim.ClaimLockLocked, 20, seen.Add(-time.Hour)

	r := chi.NewRouter()
	accounts.Routes(r)
	noStation := func(*http.Request) (string, error) {
		return "", httpapi.Errorf(http.StatusUnauthorized, "station token required")
	}
	noCert := func(context.Context, []byte) (claim.CertInfo, error) {
		return claim.CertInfo{}, httpapi.Errorf(http.StatusUnprocessableEntity, "no")
	}
	reg.Routes(r, noStation, noCert, accounts.RequireRole(claim.RoleOperator), "https://localhost/v1/bootstrap")
	srv := httptest.NewTLSServer(r)
	t.Cleanup(srv.Close)
	rootPath = filepath.Join(t.TempDir(), "root_ca.crt")
	writeLoginTestFile(t, rootPath, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	return srv.URL, rootPath, devices, labels
}

func TestDevicesCommandNeedsASession(t *testing.T) {
	devicesTestServer(t)
	stdout, stderr, failed := runGwpki(t, "", "devices")
	want := "gwpki: not logged in\nhint: run gwpki login --server URL --user NAME\n"
	if !failed || stdout != "" || stderr != want {
		t.Errorf("gwpki devices without a session: failed=%v stdout %q stderr %q; want %q", failed, stdout, stderr, want)
	}
}

func TestDevicesCommandTable(t *testing.T) {
	url, rootPath, _, labels := devicesTestServer(t)
	// Unclaimed gateways are nobody's: an operator sees none of them.
	loginAs(t, url, rootPath, "olga", "olga password")
	stdout, stderr, failed := runGwpki(t, "", "devices")
	if want := "SERIAL  MODEL  STATE  ORG  STATION  ONLINE  LAST-SEEN  CERT-EXPIRES  IDEVID-EXPIRES  REGISTERED\n"; failed || stderr != "" || stdout != want {
		t.Errorf("gwpki devices as an operator: failed=%v stderr %q stdout %q; want the header only", failed, stderr, stdout)
	}
	loginAs(t, url, rootPath, "ada", "ada password")

	stdout, stderr, failed = runGwpki(t, "", "devices")
	want := `SERIAL     MODEL           STATE      ORG  STATION  ONLINE  LAST-SEEN             CERT-EXPIRES  IDEVID-EXPIRES  REGISTERED
GW-000001  "Meter \"XL\""  unclaimed  -    line2    no      -                     -             2046-05-01      2026-05-01T10:02:00Z
GW-000002  PumpCtl 3       locked     -    line1    no      -                     -             2046-04-30      2026-05-01T10:01:00Z
GW-000003  PumpCtl 3       unclaimed  -    repair   yes     2026-05-02T08:00:03Z  2026-05-09    2046-05-03      2026-05-01T10:03:00Z
`
	if failed || stderr != "" || stdout != want {
		t.Errorf("gwpki devices: failed=%v stderr %q stdout:\n%s\nwant:\n%s", failed, stderr, stdout, want)
	}
	for _, l := range labels {
		if strings.Contains(stdout, l) {
			t.Errorf("gwpki devices shows the label code %s", l)
		}
	}

	// A page that stops early says how to go on, on stderr.
	stdout, stderr, failed = runGwpki(t, "", "devices", "--limit", "1", "--model", "PumpCtl 3")
	if failed || stderr != "more gateways: run again with --after GW-000002\n" || !strings.Contains(stdout, "\nGW-000002 ") || strings.Count(stdout, "\n") != 2 {
		t.Errorf("gwpki devices --limit 1 --model 'PumpCtl 3': failed=%v stderr %q stdout:\n%s\nwant GW-000002 and an --after hint", failed, stderr, stdout)
	}
	stdout, stderr, failed = runGwpki(t, "", "devices", "--after", "GW-000002", "--state", "unclaimed")
	if failed || stderr != "" || !strings.Contains(stdout, "\nGW-000003 ") || strings.Count(stdout, "\n") != 2 {
		t.Errorf("gwpki devices --after GW-000002: failed=%v stderr %q stdout:\n%s\nwant only GW-000003", failed, stderr, stdout)
	}
	// Sorted by another key, descending, and searched: the hint carries
	// the opaque cursor, quoted for the shell, with the sort it needs; the
	// cursor shows the next page.
	stdout, stderr, failed = runGwpki(t, "", "devices", "--sort", "registered", "--desc", "--limit", "1")
	if failed || !strings.HasPrefix(stderr, "more gateways: run again with --sort registered --desc --after '~") ||
		!strings.Contains(stdout, "\nGW-000003 ") || strings.Count(stdout, "\n") != 2 {
		t.Fatalf("gwpki devices --sort registered --desc --limit 1: failed=%v stderr %q stdout:\n%s\nwant GW-000003 and a cursor", failed, stderr, stdout)
	}
	cursor := strings.TrimSuffix(strings.TrimPrefix(stderr, "more gateways: run again with --sort registered --desc --after '"), "'\n")
	stdout, stderr, failed = runGwpki(t, "", "devices", "--sort", "registered", "--desc", "--after", cursor)
	if failed || stderr != "" || !strings.Contains(stdout, "\nGW-000001 ") || !strings.Contains(stdout, "\nGW-000002 ") ||
		strings.Index(stdout, "GW-000001") > strings.Index(stdout, "GW-000002") || strings.Count(stdout, "\n") != 3 {
		t.Errorf("gwpki devices --sort registered --desc --after %s: failed=%v stderr %q stdout:\n%s\nwant GW-000001 then GW-000002", cursor, failed, stderr, stdout)
	}
	// The same cursor with another order is refused by the server.
	_, stderr, failed = runGwpki(t, "", "devices", "--sort", "registered", "--after", cursor)
	if !failed || !strings.Contains(stderr, "gwpki: list devices: invalid after\n") {
		t.Errorf("gwpki devices --sort registered --after CURSOR-of-desc: failed=%v stderr %q; want invalid after", failed, stderr)
	}
	stdout, stderr, failed = runGwpki(t, "", "devices", "--q", "meter", "--sort", "model")
	if failed || stderr != "" || !strings.Contains(stdout, "\nGW-000001 ") || strings.Count(stdout, "\n") != 2 {
		t.Errorf("gwpki devices --q meter: failed=%v stderr %q stdout:\n%s\nwant only GW-000001", failed, stderr, stdout)
	}
	// No match: the header alone.
	stdout, stderr, failed = runGwpki(t, "", "devices", "--model", "Toaster")
	if failed || stderr != "" || !strings.HasPrefix(stdout, "SERIAL ") || strings.Count(stdout, "\n") != 1 {
		t.Errorf("gwpki devices --model Toaster: failed=%v stderr %q stdout %q; want the header only", failed, stderr, stdout)
	}
}

func TestDevicesCommandJSON(t *testing.T) {
	url, rootPath, devices, _ := devicesTestServer(t)
	loginAs(t, url, rootPath, "ada", "ada password")

	stdout, stderr, failed := runGwpki(t, "", "devices", "--json", "--limit", "2")
	if failed || stderr != "" {
		t.Fatalf("gwpki devices --json: failed=%v stderr %q", failed, stderr)
	}
	var page claim.DevicePage
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&page); err != nil || dec.More() {
		t.Fatalf("gwpki devices --json printed %q: %v; want one JSON page only", stdout, err)
	}
	want := claim.DevicePage{Devices: devices[:2], Next: "GW-000002"}
	if diff := cmp.Diff(want, page); diff != "" {
		t.Errorf("gwpki devices --json --limit 2 (-want +got):\n%s", diff)
	}
	if page.Devices[0].Generation != 1 || devices[2].Generation != 2 {
		t.Errorf("generations %d and %d; want 1 and, reissued, 2", page.Devices[0].Generation, devices[2].Generation)
	}

	// An empty page is an empty array, for scripts.
	stdout, _, failed = runGwpki(t, "", "devices", "--json", "--after", "GW-000003")
	if want := "{\n  \"devices\": []\n}\n"; failed || stdout != want {
		t.Errorf("gwpki devices --json --after GW-000003: failed=%v stdout %q; want %q", failed, stdout, want)
	}
}

func TestDevicesCommandErrors(t *testing.T) {
	url, rootPath, _, _ := devicesTestServer(t)
	loginAs(t, url, rootPath, "ivy", "ivy password")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"devices"}, "gwpki: list devices: permission denied: needs role operator or admin\nhint: log in as a user with that role\n"},
		{[]string{"devices", "extra"}, "gwpki: unknown command \"extra\" for \"gwpki devices\"\n"},
		{[]string{"devices", "--limit", "x"}, "gwpki: invalid argument \"x\" for \"--limit\" flag: strconv.ParseInt: parsing \"x\": invalid syntax\n"},
		// Checked before the server is asked.
		{[]string{"devices", "--sort", "colour"}, "gwpki: unknown --sort \"colour\"\nhint: use one of: serial, model, state, org, registered\n"},
	}
	for _, tc := range tests {
		stdout, stderr, failed := runGwpki(t, "", tc.args...)
		if !failed || stdout != "" || stderr != tc.want {
			t.Errorf("gwpki %v: failed=%v stdout %q stderr %q; want %q", tc.args, failed, stdout, stderr, tc.want)
		}
	}
	// Checked before the server is asked: 0 would otherwise mean the default.
	for _, limit := range []string{"0", "-1", "1001"} {
		stdout, stderr, failed := runGwpki(t, "", "devices", "--limit", limit)
		want := "gwpki: invalid --limit " + limit + "\nhint: use a number from 1 to 1000\n"
		if !failed || stdout != "" || stderr != want {
			t.Errorf("gwpki devices --limit %s: failed=%v stdout %q stderr %q; want %q", limit, failed, stdout, stderr, want)
		}
	}
	// The lock is no claim state the server filters by: said before asking.
	stdout, stderr, failed := runGwpki(t, "", "devices", "--state", "locked")
	if want := "gwpki: --state locked is not a filter the server has\nhint: list the gateways and look for STATE locked, or claim_lock in --json\n"; !failed || stdout != "" || stderr != want {
		t.Errorf("gwpki devices --state locked: failed=%v stdout %q stderr %q; want %q", failed, stdout, stderr, want)
	}
	// The server's refusal comes with its hint.
	loginAs(t, url, rootPath, "olga", "olga password")
	stdout, stderr, failed = runGwpki(t, "", "devices", "--state", "lost")
	if want := "gwpki: list devices: unknown state \"lost\"\nhint: use one of: unclaimed, claimed\n"; !failed || stdout != "" || stderr != want {
		t.Errorf("gwpki devices --state lost: failed=%v stdout %q stderr %q; want %q", failed, stdout, stderr, want)
	}
}

// TestDevicesState: the STATE column says revoked over locked over the
// claim state; a back-off, which ends by itself, is not a state.
func TestDevicesState(t *testing.T) {
	for _, tc := range []struct {
		d    claim.Device
		want string
	}{
		{claim.Device{State: claim.StateUnclaimed}, "unclaimed"},
		{claim.Device{State: claim.StateClaimed, ClaimLock: claim.ClaimLockBackoff}, "claimed"},
		{claim.Device{State: claim.StateUnclaimed, ClaimLock: claim.ClaimLockLocked}, "locked"},
		{claim.Device{State: claim.StateClaimed, ClaimLock: claim.ClaimLockLocked}, "locked"},
		{claim.Device{State: claim.StateClaimed, ClaimLock: claim.ClaimLockLocked, Revoked: true}, "revoked"},
	} {
		if got := deviceState(tc.d); got != tc.want {
			t.Errorf("deviceState(%+v) = %s; want %s", tc.d, got, tc.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"GW-000002", "GW-000002"},
		{"~bW9kZWw", "'~bW9kZWw'"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"-x", "'-x'"},
		{"", "''"},
	} {
		if got := shellQuote(tc.in); got != tc.want {
			t.Errorf("shellQuote(%q) = %s; want %s", tc.in, got, tc.want)
		}
	}
}
