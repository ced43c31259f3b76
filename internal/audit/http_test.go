package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/store/storetest"
)

// userScope scopes the audit API as gwpki serve does: admins see all, others
// their organisation.
func userScope(r *http.Request) (string, bool) {
	u, ok := claim.UserFromContext(r.Context())
	return u.Org, ok && u.Role == claim.RoleAdmin
}

// auditServer serves the real accounts API and the audit log behind the
// operator role check and scoped by userScope, as gwpki serve mounts them,
// with an admin ada (org hq), an operator olga and an installer ivy (org
// acme), and three entries of org acme in the log.
func auditServer(t *testing.T) (url string, l *audit.Log) {
	t.Helper()
	db := storetest.OpenTemp(t)
	accounts, err := claim.NewAccounts(db, claim.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []claim.NewUser{
		{Username: "ada", Org: "hq", Role: claim.RoleAdmin, Password: "ada password"},
		{Username: "olga", Org: "acme", Role: claim.RoleOperator, Password: "olga password"},
		{Username: "ivy", Org: "acme", Role: claim.RoleInstaller, Password: "ivy password"},
	} {
		if _, err := accounts.CreateUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	l = newLog(t, db, audit.WithClock(stepClock()))
	for _, e := range []audit.Entry{
		{Actor: "user:ivy", Org: "acme", Action: "claim", Target: "GW-1", Result: audit.ResultRefused, Source: "192.0.2.9:5000",
			Detail: map[string]string{"why": "wrong code"}},
		{Actor: "user:ivy", Org: "acme", Action: "claim", Target: "GW-1", Result: audit.ResultOK, Source: "192.0.2.9:5001"},
		{Actor: "user:olga", Org: "acme", Action: "revoke", Target: "GW-1", Result: audit.ResultOK, Source: "192.0.2.7:41234",
			Detail: map[string]string{"reason": "key compromise", "certificates": "2"}},
	} {
		mustRecord(t, l, e)
	}
	r := chi.NewRouter()
	accounts.Routes(r)
	l.Routes(r, userScope, accounts.RequireRole(claim.RoleOperator))
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv.URL, l
}

// login returns a bearer token for user, through POST /v1/login.
func login(t *testing.T, url, user, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	resp, err := http.Post(url+"/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Token == "" {
		t.Fatalf("log in as %s: status %d, %v", user, resp.StatusCode, err)
	}
	return out.Token
}

// get sends GET url with token (none if empty) and returns the answer.
func get(t *testing.T, url, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestAuditAPIAuthorization(t *testing.T) {
	url, _ := auditServer(t)

	resp, body := get(t, url+"/v1/audit", "")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") ||
		!strings.Contains(body, `"authentication required"`) {
		t.Errorf("GET /v1/audit without a session = %d %q, WWW-Authenticate %q; want 401 authentication required",
			resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"))
	}
	resp, body = get(t, url+"/v1/audit", "bm90IGEgdG9rZW4")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /v1/audit with an unknown token = %d %q; want 401", resp.StatusCode, body)
	}
	resp, body = get(t, url+"/v1/audit", login(t, url, "ivy", "ivy password"))
	if want := `{"error":"permission denied: needs role operator or admin"}` + "\n"; resp.StatusCode != http.StatusForbidden || body != want {
		t.Errorf("GET /v1/audit as an installer = %d %q; want 403 %q", resp.StatusCode, body, want)
	}
	for _, user := range []string{"olga", "ada"} {
		resp, body = get(t, url+"/v1/audit", login(t, url, user, user+" password"))
		var p audit.Page
		if err := json.Unmarshal([]byte(body), &p); resp.StatusCode != http.StatusOK || err != nil || len(p.Entries) != 3 {
			t.Errorf("GET /v1/audit as %s = %d %q; want 200 and three entries", user, resp.StatusCode, body)
		}
	}
}

func TestAuditAPIAnswers(t *testing.T) {
	url, _ := auditServer(t)
	token := login(t, url, "olga", "olga password")

	// The exact JSON: field names, RFC 3339 UTC times, empty fields left out.
	resp, body := get(t, url+"/v1/audit?limit=2", token)
	want := `{"entries":[` +
		`{"seq":3,"time":"2026-05-01T10:00:02Z","actor":"user:olga","org":"acme","action":"revoke","target":"GW-1","result":"ok",` +
		`"source":"192.0.2.7:41234","detail":{"certificates":"2","reason":"key compromise"}},` +
		`{"seq":2,"time":"2026-05-01T10:00:01Z","actor":"user:ivy","org":"acme","action":"claim","target":"GW-1","result":"ok",` +
		`"source":"192.0.2.9:5001"}` +
		`],"next":2}` + "\n"
	if resp.StatusCode != http.StatusOK || body != want {
		t.Errorf("GET /v1/audit?limit=2 = %d\n%s\nwant 200\n%s", resp.StatusCode, body, want)
	}
	if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != "application/json" || cc != "no-store" {
		t.Errorf("Content-Type %q, Cache-Control %q; want application/json, no-store", ct, cc)
	}

	tests := []struct {
		query string
		want  []uint64
		next  uint64
	}{
		{"", []uint64{3, 2, 1}, 0},
		{"?before=2", []uint64{1}, 0},
		{"?before=0&limit=1", []uint64{3}, 3},
		{"?action=claim", []uint64{2, 1}, 0},
		{"?action=claim&limit=1", []uint64{2}, 2},
		{"?target=GW-1&actor=user%3Aolga", []uint64{3}, 0},
		{"?actor=user:ivy&action=revoke", []uint64{}, 0},
		{"?action=", []uint64{3, 2, 1}, 0}, // an empty filter is no filter
		{"?limit=1000", []uint64{3, 2, 1}, 0},
	}
	for _, tc := range tests {
		resp, body := get(t, url+"/v1/audit"+tc.query, token)
		var p audit.Page
		if err := json.Unmarshal([]byte(body), &p); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET /v1/audit%s = %d %q; want 200", tc.query, resp.StatusCode, body)
			continue
		}
		if got := seqs(p); !slices.Equal(got, tc.want) || p.Next != tc.next {
			t.Errorf("GET /v1/audit%s = seqs %v next %d; want %v next %d", tc.query, got, p.Next, tc.want, tc.next)
		}
	}
	// An empty page is an empty array, not null.
	if _, body := get(t, url+"/v1/audit?before=1", token); body != `{"entries":[]}`+"\n" {
		t.Errorf("GET /v1/audit?before=1 = %q; want an empty entries array", body)
	}
}

func TestAuditAPIRefusesBadParameters(t *testing.T) {
	url, _ := auditServer(t)
	token := login(t, url, "olga", "olga password")
	const paramsHint = "use before, limit, action, target, actor and org, each at most once"
	tests := []struct {
		query, msg, hint string
	}{
		{"limit=0", `invalid limit "0"`, "use a number from 1 to 1000"},
		{"limit=1001", `invalid limit "1001"`, "use a number from 1 to 1000"},
		{"limit=-5", `invalid limit "-5"`, "use a number from 1 to 1000"},
		{"limit=ten", `invalid limit "ten"`, "use a number from 1 to 1000"},
		{"before=-1", `invalid before "-1"`, "use a sequence number, such as the next of the previous page"},
		{"before=18446744073709551616", `invalid before "18446744073709551616"`, "use a sequence number, such as the next of the previous page"},
		{"before=" + strings.Repeat("9", 100), `invalid before "` + strings.Repeat("9", 29) + `…"`, "use a sequence number, such as the next of the previous page"},
		{"acton=revoke", `unknown query parameter "acton"`, paramsHint},
		{"action=revoke&action=claim", "query parameter action given more than once", paramsHint},
		{"target=%zz", "malformed query string", "percent-encode the parameter values"},
		{"actor=" + strings.Repeat("a", 1025), "actor longer than 1024 bytes", "filters match whole values, which are never that long"},
		{"org=" + strings.Repeat("a", 1025), "org longer than 1024 bytes", "filters match whole values, which are never that long"},
		{"org=acme&org=acme", "query parameter org given more than once", paramsHint},
	}
	for _, tc := range tests {
		resp, body := get(t, url+"/v1/audit?"+tc.query, token)
		var e struct{ Error, Hint string }
		if err := json.Unmarshal([]byte(body), &e); err != nil || resp.StatusCode != http.StatusBadRequest || e.Error != tc.msg || e.Hint != tc.hint {
			t.Errorf("GET /v1/audit?%.40s = %d %q; want 400 %q with hint %q", tc.query, resp.StatusCode, body, tc.msg, tc.hint)
		}
	}
	// Only GET.
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/audit", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/audit = %d; want 405", resp.StatusCode)
	}
}

// TestAuditAPIScopesByOrg: operators read only their organisation's entries,
// whatever they ask; admins read all and may filter by organisation.
func TestAuditAPIScopesByOrg(t *testing.T) {
	url, l := auditServer(t)
	mustRecord(t, l, audit.Entry{Actor: "user:gus", Org: "globex", Action: "revoke", Target: "GW-9", Result: audit.ResultOK})      // 4
	mustRecord(t, l, audit.Entry{Actor: audit.StationActor("line1"), Action: "register", Target: "GW-10", Result: audit.ResultOK}) // 5: no org
	olga := login(t, url, "olga", "olga password")
	ada := login(t, url, "ada", "ada password")

	tests := []struct {
		user, token, query string
		want               []uint64
	}{
		{"olga", olga, "", []uint64{3, 2, 1}},
		{"olga", olga, "?org=acme", []uint64{3, 2, 1}},
		{"olga", olga, "?org=", []uint64{3, 2, 1}},
		{"olga", olga, "?target=GW-9", []uint64{}},
		{"olga", olga, "?action=register", []uint64{}},
		{"olga", olga, "?action=revoke&org=acme", []uint64{3}},
		{"ada", ada, "", []uint64{5, 4, 3, 2, 1}},
		{"ada", ada, "?org=globex", []uint64{4}},
		{"ada", ada, "?org=acme&action=claim", []uint64{2, 1}},
		{"ada", ada, "?org=hq", []uint64{}},
		{"ada", ada, "?action=register", []uint64{5}},
	}
	for _, tc := range tests {
		resp, body := get(t, url+"/v1/audit"+tc.query, tc.token)
		var p audit.Page
		if err := json.Unmarshal([]byte(body), &p); err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET /v1/audit%s as %s = %d %q; want 200", tc.query, tc.user, resp.StatusCode, body)
			continue
		}
		if got := seqs(p); !slices.Equal(got, tc.want) {
			t.Errorf("GET /v1/audit%s as %s = seqs %v; want %v", tc.query, tc.user, got, tc.want)
		}
	}

	for _, query := range []string{"?org=globex", "?org=hq&action=revoke", "?org=ACME"} {
		resp, body := get(t, url+"/v1/audit"+query, olga)
		want := `{"error":"operators see only their organisation's audit entries",` +
			`"hint":"leave out org: your organisation's entries are shown"}` + "\n"
		if resp.StatusCode != http.StatusForbidden || body != want {
			t.Errorf("GET /v1/audit%s as olga = %d %q; want 403 %q", query, resp.StatusCode, body, want)
		}
	}
}

// TestRoutesScopeIsEnforced drives Routes with a stub middleware and scope:
// a caller of no organisation that is not all-seeing reads nothing, and the
// scope is asked only after the middleware has run.
func TestRoutesScopeIsEnforced(t *testing.T) {
	l := newLog(t, storetest.OpenTemp(t))
	mustRecord(t, l, audit.Entry{Actor: audit.ActorSystem, Action: "start", Result: audit.ResultOK})
	mustRecord(t, l, audit.Entry{Actor: "user:olga", Org: "acme", Action: "login", Result: audit.ResultOK})
	type key struct{}
	authenticate := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			org, all := r.Header.Get("X-Org"), r.Header.Get("X-All") != ""
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key{}, [2]any{org, all})))
		})
	}
	scope := func(r *http.Request) (string, bool) {
		v, ok := r.Context().Value(key{}).([2]any)
		if !ok {
			t.Error("scope called before the middleware ran")
			return "", false
		}
		return v[0].(string), v[1].(bool)
	}
	r := chi.NewRouter()
	l.Routes(r, scope, authenticate)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)

	tests := []struct {
		org, all, query string
		status          int
		want            []uint64
	}{
		{"", "", "", http.StatusForbidden, nil},
		{"", "", "?org=acme", http.StatusForbidden, nil},
		{"acme", "", "", http.StatusOK, []uint64{2}},
		{"globex", "", "", http.StatusOK, []uint64{}},
		{"globex", "", "?org=acme", http.StatusForbidden, nil},
		{"", "yes", "", http.StatusOK, []uint64{2, 1}},
		{"acme", "yes", "?org=globex", http.StatusOK, []uint64{}},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/audit"+tc.query, nil)
		req.Header.Set("X-Org", tc.org)
		req.Header.Set("X-All", tc.all)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p audit.Page
		err = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		if resp.StatusCode != tc.status || tc.status == http.StatusOK && (err != nil || !slices.Equal(seqs(p), tc.want)) {
			t.Errorf("GET /v1/audit%s as org %q all %q = %d seqs %v (%v); want %d seqs %v",
				tc.query, tc.org, tc.all, resp.StatusCode, seqs(p), err, tc.status, tc.want)
		}
	}
}

func TestRoutesRefusesToServeWithoutAuthentication(t *testing.T) {
	l := newLog(t, storetest.OpenTemp(t))
	noop := func(h http.Handler) http.Handler { return h }
	all := func(*http.Request) (string, bool) { return "", true }
	for name, mount := range map[string]func(){
		"without middleware": func() { l.Routes(chi.NewRouter(), all) },
		"without a scope":    func() { l.Routes(chi.NewRouter(), nil, noop) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Routes %s did not panic", name)
				}
			}()
			mount()
		}()
	}
}

func TestQueryEncode(t *testing.T) {
	tests := []struct {
		q    audit.Query
		want string
	}{
		{audit.Query{}, ""},
		{audit.Query{Before: 42, Limit: 10}, "before=42&limit=10"},
		{audit.Query{Action: "revoke", Target: "cert:12 34", Actor: "user:olga"}, "action=revoke&actor=user%3Aolga&target=cert%3A12+34"},
		{audit.Query{Org: "acme & co"}, "org=acme+%26+co"},
		{audit.Query{Limit: 5, Org: "acme", Action: "login"}, "action=login&limit=5&org=acme"},
	}
	for _, tc := range tests {
		if got := tc.q.Encode(); got != tc.want {
			t.Errorf("%+v.Encode() = %q; want %q", tc.q, got, tc.want)
		}
	}
}
