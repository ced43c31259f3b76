package claim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/go-cmp/cmp"
)

// httpEnv is an Accounts served over real TLS on 127.0.0.1.
type httpEnv struct {
	*testEnv
	srv *httptest.Server
}

func newHTTPEnv(t testing.TB, opts ...Option) *httpEnv {
	t.Helper()
	env := newTestEnv(t, opts...)
	r := chi.NewRouter()
	env.a.Routes(r)
	// Routes guarded by the other roles, as the rest of the API uses them.
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, _ := UserFromContext(r.Context())
		w.Write([]byte(u.Username))
	})
	r.With(env.a.RequireRole(RoleOperator)).Get("/test/operator", ok)
	r.With(env.a.RequireRole(RoleInstaller)).Get("/test/installer", ok)
	srv := httptest.NewTLSServer(r)
	t.Cleanup(srv.Close)
	return &httpEnv{testEnv: env, srv: srv}
}

type answer struct {
	status int
	header http.Header
	body   string
}

// errorBody decodes an {"error","hint"} answer.
func (a answer) errorBody(t testing.TB) (msg, hint string) {
	t.Helper()
	var b struct {
		Error string `json:"error"`
		Hint  string `json:"hint"`
	}
	if err := json.Unmarshal([]byte(a.body), &b); err != nil || b.Error == "" {
		t.Fatalf("answer %d %q is not a JSON error: %v", a.status, a.body, err)
	}
	return b.Error, b.Hint
}

func (env *httpEnv) do(t testing.TB, method, path, token, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, env.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := env.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func (env *httpEnv) login(t testing.TB, user, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	ans := env.do(t, "POST", "/v1/login", "", string(body))
	if ans.status != http.StatusOK {
		t.Fatalf("POST /v1/login as %s = %d %s; want 200", user, ans.status, ans.body)
	}
	var resp struct{ Token string }
	if err := json.Unmarshal([]byte(ans.body), &resp); err != nil {
		t.Fatal(err)
	}
	return resp.Token
}

func TestHTTPLogin(t *testing.T) {
	env := newHTTPEnv(t)
	env.mustCreate(t, "alice", "acme", RoleOperator, "correct horse")

	ans := env.do(t, "POST", "/v1/login", "", `{"username":"alice","password":"correct horse"}`)
	if ans.status != http.StatusOK {
		t.Fatalf("login = %d %s; want 200", ans.status, ans.body)
	}
	if cc := ans.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q; want no-store on an answer carrying a token", cc)
	}
	var resp struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
		User      struct {
			Username, Org, Role string
			Disabled            bool
		} `json:"user"`
	}
	if err := json.Unmarshal([]byte(ans.body), &resp); err != nil {
		t.Fatal(err)
	}
	exp, err := time.Parse(time.RFC3339, resp.ExpiresAt)
	if err != nil || !exp.Equal(env.clock.Now().Add(12*time.Hour)) {
		t.Errorf("expires_at = %q (%v); want RFC 3339 of now+12h", resp.ExpiresAt, err)
	}
	if resp.User.Username != "alice" || resp.User.Org != "acme" || resp.User.Role != "operator" {
		t.Errorf("user = %+v; want alice of acme, operator", resp.User)
	}
	if strings.Contains(ans.body, "password") || strings.Contains(ans.body, "argon2") {
		t.Errorf("login answer leaks the password hash: %s", ans.body)
	}
	me := env.do(t, "GET", "/v1/users/me", resp.Token, "")
	if me.status != http.StatusOK || !strings.Contains(me.body, `"username":"alice"`) {
		t.Errorf("GET /v1/users/me = %d %s; want 200 with alice", me.status, me.body)
	}
}

func TestHTTPLoginFailuresIndistinguishable(t *testing.T) {
	env := newHTTPEnv(t)
	env.mustCreate(t, "alice", "acme", RoleOperator, "correct horse")
	env.mustCreate(t, "dora", "acme", RoleOperator, "dora password")
	if _, err := env.a.SetDisabled(context.Background(), "dora", true); err != nil {
		t.Fatal(err)
	}
	wrongPassword := env.do(t, "POST", "/v1/login", "", `{"username":"alice","password":"wrong password"}`)
	if wrongPassword.status != http.StatusUnauthorized {
		t.Fatalf("wrong password = %d %s; want 401", wrongPassword.status, wrongPassword.body)
	}
	if msg, _ := wrongPassword.errorBody(t); msg != "invalid username or password" {
		t.Errorf("wrong password message = %q; want \"invalid username or password\"", msg)
	}
	for _, body := range []string{
		`{"username":"nobody","password":"wrong password"}`,
		`{"username":"dora","password":"dora password"}`,
		`{"username":"NOT VALID","password":"wrong password"}`,
	} {
		got := env.do(t, "POST", "/v1/login", "", body)
		if got.status != wrongPassword.status || got.body != wrongPassword.body {
			t.Errorf("login %s = %d %q; want the same as a wrong password: %d %q",
				body, got.status, got.body, wrongPassword.status, wrongPassword.body)
		}
	}
}

func TestHTTPAuth(t *testing.T) {
	env := newHTTPEnv(t)
	env.mustCreate(t, "ivy", "acme", RoleInstaller, "ivy password")
	env.mustCreate(t, "otto", "acme", RoleOperator, "otto password")
	env.mustCreate(t, "ada", "acme", RoleAdmin, "ada password")
	tokens := map[string]string{
		"ivy":  env.login(t, "ivy", "ivy password"),
		"otto": env.login(t, "otto", "otto password"),
		"ada":  env.login(t, "ada", "ada password"),
	}
	tests := []struct {
		method, path, user string
		want               int
	}{
		{"GET", "/v1/users", "ivy", http.StatusForbidden},
		{"GET", "/v1/users", "otto", http.StatusForbidden},
		{"GET", "/v1/users", "ada", http.StatusOK},
		{"GET", "/v1/users/me", "ivy", http.StatusOK},
		{"GET", "/test/operator", "ivy", http.StatusForbidden},
		{"GET", "/test/operator", "otto", http.StatusOK},
		{"GET", "/test/operator", "ada", http.StatusOK}, // admin passes every check
		{"GET", "/test/installer", "otto", http.StatusForbidden},
		{"GET", "/test/installer", "ivy", http.StatusOK},
		{"GET", "/test/installer", "ada", http.StatusOK},
	}
	for _, tc := range tests {
		ans := env.do(t, tc.method, tc.path, tokens[tc.user], "")
		if ans.status != tc.want {
			t.Errorf("%s %s as %s = %d %s; want %d", tc.method, tc.path, tc.user, ans.status, ans.body, tc.want)
		}
		if ans.status == http.StatusOK && strings.HasPrefix(tc.path, "/test/") && ans.body != tc.user {
			t.Errorf("%s %s as %s: UserFromContext gave %q", tc.method, tc.path, tc.user, ans.body)
		}
		if ans.status == http.StatusForbidden {
			if msg, _ := ans.errorBody(t); !strings.HasPrefix(msg, "permission denied") {
				t.Errorf("403 message = %q; want \"permission denied...\"", msg)
			}
		}
	}

	for name, header := range map[string]string{
		"no header":      "",
		"token in query": "",
		"basic auth":     "Basic YWRhOmFkYSBwYXNzd29yZA==",
		"empty bearer":   "Bearer ",
		"garbage":        "Bearer not-a-token",
		"unknown token":  "Bearer " + strings.Repeat("A", tokenLen),
	} {
		url := env.srv.URL + "/v1/users/me"
		if name == "token in query" {
			url += "?token=" + tokens["ada"]
		}
		req, _ := http.NewRequest("GET", url, nil)
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := env.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: status %d, WWW-Authenticate %q; want 401 with a Bearer challenge",
				name, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
}

func TestHTTPExpiredToken(t *testing.T) {
	env := newHTTPEnv(t, WithSessionTTL(30*time.Minute))
	env.mustCreate(t, "alice", "acme", RoleAdmin, "correct horse")
	token := env.login(t, "alice", "correct horse")
	env.clock.Advance(29 * time.Minute)
	if ans := env.do(t, "GET", "/v1/users", token, ""); ans.status != http.StatusOK {
		t.Errorf("before expiry: %d %s; want 200", ans.status, ans.body)
	}
	env.clock.Advance(time.Minute)
	ans := env.do(t, "GET", "/v1/users", token, "")
	if ans.status != http.StatusUnauthorized {
		t.Fatalf("after expiry: %d %s; want 401", ans.status, ans.body)
	}
	if msg, hint := ans.errorBody(t); msg != "invalid or expired session" || !strings.Contains(hint, "gwpki login") {
		t.Errorf("after expiry: error %q hint %q; want invalid or expired session and a login hint", msg, hint)
	}
}

func TestHTTPLogout(t *testing.T) {
	env := newHTTPEnv(t)
	env.mustCreate(t, "alice", "acme", RoleInstaller, "correct horse")
	token := env.login(t, "alice", "correct horse")
	if ans := env.do(t, "POST", "/v1/logout", token, ""); ans.status != http.StatusNoContent {
		t.Fatalf("logout = %d %s; want 204", ans.status, ans.body)
	}
	if ans := env.do(t, "GET", "/v1/users/me", token, ""); ans.status != http.StatusUnauthorized {
		t.Errorf("after logout: %d; want 401", ans.status)
	}
	if ans := env.do(t, "POST", "/v1/logout", token, ""); ans.status != http.StatusUnauthorized {
		t.Errorf("second logout: %d; want 401", ans.status)
	}
}

func TestHTTPCreateUser(t *testing.T) {
	env := newHTTPEnv(t)
	env.mustCreate(t, "ada", "hq", RoleAdmin, "ada password")
	admin := env.login(t, "ada", "ada password")

	body := `{"username":"bob","org":"acme","role":"installer","password":"bobs password"}`
	ans := env.do(t, "POST", "/v1/users", admin, body)
	if ans.status != http.StatusCreated {
		t.Fatalf("POST /v1/users = %d %s; want 201", ans.status, ans.body)
	}
	var u User
	if err := json.Unmarshal([]byte(ans.body), &u); err != nil {
		t.Fatal(err)
	}
	want := User{Username: "bob", Org: "acme", Role: RoleInstaller, CreatedAt: env.clock.Now()}
	if diff := cmp.Diff(want, u); diff != "" {
		t.Errorf("created user (-want +got):\n%s", diff)
	}
	if got := env.login(t, "bob", "bobs password"); got == "" {
		t.Error("new user cannot log in")
	}

	dup := env.do(t, "POST", "/v1/users", admin, `{"username":"bob","org":"other","role":"admin","password":"another password"}`)
	if dup.status != http.StatusConflict {
		t.Errorf("duplicate user = %d %s; want 409", dup.status, dup.body)
	}
	list := env.do(t, "GET", "/v1/users", admin, "")
	var users []User
	if err := json.Unmarshal([]byte(list.body), &users); err != nil {
		t.Fatalf("GET /v1/users: %v in %s", err, list.body)
	}
	if len(users) != 2 || users[1].Username != "bob" || users[1].Role != RoleInstaller || users[1].Org != "acme" {
		t.Errorf("users after a duplicate = %+v; want ada and the first bob unchanged", users)
	}
}

// TestHTTPBadInputStoresNothing sends bad bodies and checks each gets its
// 4xx and nothing reaches the store: no user, no organisation, no session,
// no attempt counted.
func TestHTTPBadInputStoresNothing(t *testing.T) {
	env := newHTTPEnv(t)
	env.mustCreate(t, "ada", "hq", RoleAdmin, "ada password")
	admin := env.login(t, "ada", "ada password")
	huge := `{"username":"bob","org":"acme","role":"installer","password":"` + strings.Repeat("x", 70<<10) + `"}`
	tests := []struct {
		name, path, body string
		want             int
	}{
		{"login malformed", "/v1/login", `{"username":"ada",`, http.StatusBadRequest},
		{"login not an object", "/v1/login", `["ada","ada password"]`, http.StatusBadRequest},
		{"login unknown field", "/v1/login", `{"username":"ada","password":"ada password","admin":true}`, http.StatusBadRequest},
		{"login wrong type", "/v1/login", `{"username":"ada","password":12345678}`, http.StatusBadRequest},
		{"login trailing data", "/v1/login", `{"username":"ada","password":"ada password"}{}`, http.StatusBadRequest},
		{"login oversized", "/v1/login", `{"username":"ada","password":"` + strings.Repeat("x", 70<<10) + `"}`, http.StatusRequestEntityTooLarge},
		{"login password over 1024 bytes", "/v1/login", `{"username":"ada","password":"` + strings.Repeat("x", 1025) + `"}`, http.StatusBadRequest},
		{"login empty password", "/v1/login", `{"username":"ada","password":""}`, http.StatusBadRequest},
		{"login empty body", "/v1/login", ``, http.StatusBadRequest},
		{"user malformed", "/v1/users", `{"username":"bob"`, http.StatusBadRequest},
		{"user unknown field", "/v1/users", `{"username":"bob","org":"acme","role":"installer","password":"bobs password","disabled":true}`, http.StatusBadRequest},
		{"user oversized", "/v1/users", huge, http.StatusRequestEntityTooLarge},
		{"user bad name", "/v1/users", `{"username":"Bob","org":"acme","role":"installer","password":"bobs password"}`, http.StatusBadRequest},
		{"user bad org", "/v1/users", `{"username":"bob","org":"ac/me","role":"installer","password":"bobs password"}`, http.StatusBadRequest},
		{"user bad role", "/v1/users", `{"username":"bob","org":"acme","role":"root","password":"bobs password"}`, http.StatusBadRequest},
		{"user short password", "/v1/users", `{"username":"bob","org":"acme","role":"installer","password":"short"}`, http.StatusBadRequest},
	}
	sessions := bucketLen(t, env.db, bucketSessions)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			token := ""
			if tc.path == "/v1/users" {
				token = admin
			}
			ans := env.do(t, "POST", tc.path, token, tc.body)
			if ans.status != tc.want {
				t.Errorf("POST %s %s = %d %s; want %d", tc.path, tc.name, ans.status, ans.body, tc.want)
			}
			ans.errorBody(t)
			if strings.Contains(ans.body, "xxxxxxxx") {
				t.Errorf("error answer echoes the input: %.200s", ans.body)
			}
		})
	}
	if n := bucketLen(t, env.db, bucketUsers); n != 1 {
		t.Errorf("users after bad input = %d; want 1 (ada)", n)
	}
	if n := bucketLen(t, env.db, bucketOrgs); n != 1 {
		t.Errorf("organisations after bad input = %d; want 1 (hq)", n)
	}
	if n := bucketLen(t, env.db, bucketSessions); n != sessions {
		t.Errorf("sessions after bad input = %d; want %d", n, sessions)
	}
	if n := bucketLen(t, env.db, bucketAttempts); n != 0 {
		t.Errorf("attempt counters after bad input = %d; want 0", n)
	}

	// A wrong content type is refused before anything is read.
	req, _ := http.NewRequest("POST", env.srv.URL+"/v1/login", strings.NewReader(`{"username":"ada","password":"ada password"}`))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := env.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("login as text/plain = %d; want 415", resp.StatusCode)
	}
}

func TestHTTPLoginRateLimited(t *testing.T) {
	env := newHTTPEnv(t)
	env.mustCreate(t, "alice", "acme", RoleInstaller, "correct horse")
	for i := range 10 {
		ans := env.do(t, "POST", "/v1/login", "", `{"username":"alice","password":"wrong"}`)
		if ans.status != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d %s; want 401", i+1, ans.status, ans.body)
		}
	}
	env.clock.Advance(time.Minute)
	ans := env.do(t, "POST", "/v1/login", "", `{"username":"alice","password":"correct horse"}`)
	if ans.status != http.StatusTooManyRequests {
		t.Fatalf("11th attempt = %d %s; want 429", ans.status, ans.body)
	}
	if ra := ans.header.Get("Retry-After"); ra != "840" {
		t.Errorf("Retry-After = %q; want 840 (seconds until the first failure is 15 min old)", ra)
	}
	if msg, _ := ans.errorBody(t); msg != "too many failed login attempts" {
		t.Errorf("429 message = %q", msg)
	}
	env.clock.Advance(14 * time.Minute)
	if got := env.login(t, "alice", "correct horse"); got == "" {
		t.Error("no token after the limit expired")
	}
}

func TestHTTPDisableUser(t *testing.T) {
	env := newHTTPEnv(t)
	env.mustCreate(t, "ada", "hq", RoleAdmin, "ada password")
	// "me" is a legal username; PATCH /v1/users/me must reach it, not the
	// caller's own record.
	env.mustCreate(t, "me", "acme", RoleInstaller, "mes password")
	admin := env.login(t, "ada", "ada password")
	victim := env.login(t, "me", "mes password")

	ans := env.do(t, "PATCH", "/v1/users/me", admin, `{"disabled":true}`)
	if ans.status != http.StatusOK || !strings.Contains(ans.body, `"username":"me"`) || !strings.Contains(ans.body, `"disabled":true`) {
		t.Fatalf("PATCH /v1/users/me = %d %s; want 200 with me disabled", ans.status, ans.body)
	}
	if ans := env.do(t, "GET", "/v1/users/me", victim, ""); ans.status != http.StatusUnauthorized {
		t.Errorf("disabled user's token: %d; want 401", ans.status)
	}
	if ans := env.do(t, "PATCH", "/v1/users/ada", admin, `{"disabled":true}`); ans.status != http.StatusConflict {
		t.Errorf("admin disabling self = %d %s; want 409", ans.status, ans.body)
	}
	if ans := env.do(t, "PATCH", "/v1/users/ghost", admin, `{"disabled":true}`); ans.status != http.StatusNotFound {
		t.Errorf("disabling an unknown user = %d; want 404", ans.status)
	}
	if ans := env.do(t, "PATCH", "/v1/users/me", admin, `{}`); ans.status != http.StatusBadRequest {
		t.Errorf("PATCH with nothing = %d; want 400", ans.status)
	}
	if ans := env.do(t, "PATCH", "/v1/users/me", victim, `{"disabled":false}`); ans.status != http.StatusUnauthorized {
		t.Errorf("PATCH by a disabled user = %d; want 401", ans.status)
	}
	if ans := env.do(t, "PATCH", "/v1/users/me", admin, `{"disabled":false}`); ans.status != http.StatusOK {
		t.Errorf("re-enable = %d %s; want 200", ans.status, ans.body)
	}
	env.login(t, "me", "mes password")
}
