package claim

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/httpapi"
)

// claimEnv is the registry, the accounts, the attempt limits and the claim
// service served over TLS with a fake clock, as gwpki serve wires them: the
// registry's read routes too, with the claim attempts as their only fleet
// source.
type claimEnv struct {
	*regEnv
	accounts *testEnv
	attempts *Attempts
	claims   *Claims
	srv      *httptest.Server
	revoked  *revokeLog
	button   string // the gateway the fake gateway authentication names
	metrics  *prometheus.Registry
}

// revokeLog is a fake RevokeOperational that remembers its calls.
type revokeLog struct {
	mu    sync.Mutex
	calls []string
}

func (r *revokeLog) revoke(_ context.Context, gateway, actor, _ string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, gateway+" by "+actor)
	return []string{"42"}, nil
}

func newClaimEnv(t testing.TB) *claimEnv {
	t.Helper()
	env := &claimEnv{regEnv: newRegEnv(t), revoked: &revokeLog{}, metrics: prometheus.NewRegistry()}
	env.accounts = &testEnv{db: env.db, path: env.path, clock: env.clock, logs: env.logs}
	// Sessions outlive the clock's jumps over back-offs and locks.
	env.accounts.a = env.accounts.open(t, WithAudit(env.audit), WithSessionTTL(365*24*time.Hour), WithRegisterer(env.metrics))
	attempts, err := NewAttempts(env.db, Limits{}, WithClock(env.clock.Now), WithRegisterer(env.metrics))
	if err != nil {
		t.Fatal(err)
	}
	env.claims, err = NewClaims(env.reg, attempts, env.audit, env.revoked.revoke, WithClock(env.clock.Now), WithRegisterer(env.metrics))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	env.accounts.a.Routes(r)
	gatewayAuth := func(r *http.Request) (string, error) {
		if env.button == "" {
			return "", httpapi.Errorf(http.StatusUnauthorized, "no gateway client certificate")
		}
		return env.button, nil
	}
	env.claims.Routes(r, env.accounts.a.RequireRole(RoleInstaller, RoleOperator), env.accounts.a.RequireRole(RoleOperator), gatewayAuth)
	env.attempts = attempts
	env.reg.SetFleetSources(FleetSources{ClaimAttempts: attempts.Gateway})
	noCA := &fakeCA{certs: map[string]CertInfo{}}
	env.reg.Routes(r, noCA.stationAuth, noCA.verify, env.accounts.a.RequireRole(RoleOperator), testBootstrapURL)
	env.srv = httptest.NewTLSServer(r)
	t.Cleanup(env.srv.Close)
	return env
}

// register registers gateway serial and returns its claim credentials.
func (env *claimEnv) register(t testing.TB, serial string) Credentials {
	t.Helper()
	_, creds, _, err := env.reg.Register(context.Background(), regReq(serial, "m1", "line1", 1))
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// user creates a user and logs in from source, returning a client that
// speaks from that address.
func (env *claimEnv) user(t testing.TB, name, org string, role Role, source string) *claimClient {
	t.Helper()
	env.accounts.mustCreate(t, name, org, role, name+" password")
	c := &claimClient{env: env, http: env.client(t, source)}
	body, _ := json.Marshal(map[string]string{"username": name, "password": name + " password"})
	a := c.do(t, "POST", "/v1/login", string(body))
	var resp struct{ Token string }
	if err := json.Unmarshal([]byte(a.body), &resp); a.status != 200 || err != nil {
		t.Fatalf("login %s = %d %s", name, a.status, a.body)
	}
	c.token = resp.Token
	return c
}

// client returns an HTTPS client of the test server whose connections come
// from the loopback address source (127.0.0.0/8 is all loopback on Linux).
func (env *claimEnv) client(t testing.TB, source string) *http.Client {
	t.Helper()
	tr := env.srv.Client().Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	tr.DialContext = d.DialContext
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

type claimClient struct {
	env   *claimEnv
	http  *http.Client
	token string
}

func (c *claimClient) do(t testing.TB, method, path, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, c.env.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := fmt.Fprint(&b, readAll(t, resp)); err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b.String()}
}

func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}

// claim posts a claim and decodes a refusal.
func (c *claimClient) claim(t testing.TB, serial, code string) (int, ClaimRefusal, answer) {
	t.Helper()
	body, _ := json.Marshal(ClaimBody{Serial: serial, Code: code})
	a := c.do(t, "POST", "/v1/claims", string(body))
	var r ClaimRefusal
	if a.status != http.StatusOK {
		if err := json.Unmarshal([]byte(a.body), &r); err != nil {
			t.Fatalf("claim answer %d %s: %v", a.status, a.body, err)
		}
	}
	return a.status, r, a
}

// wrongCode returns the i-th check-valid display code that is (almost
// surely) nobody's: 8 symbols of i in base 32 and their check symbol.
func wrongCode(i int) string {
	var b [5]byte
	v := uint64(i)
	for k := 4; k >= 0; k-- {
		b[k], v = byte(v), v>>8
	}
	return FormatDisplay(b[:])
}

// TestClaimGatewayLimits walks one gateway through the limits of DESIGN.md
// on the API, over a clock that never sleeps: five free failures within 15
// minutes, back-off of 1, 2, 4, ... minutes, a lock at the 20th failure that
// outlasts any wait, and the rightful installer through after an unlock.
// Guesses come from many users and addresses, so only the gateway limit
// speaks.
func TestClaimGatewayLimits(t *testing.T) {
	env := newClaimEnv(t)
	creds := env.register(t, "GW-1")
	var guessers []*claimClient
	for i := range 6 {
		guessers = append(guessers, env.user(t, fmt.Sprintf("guesser%d", i), "evil", RoleInstaller, fmt.Sprintf("127.0.0.%d", 10+i)))
	}
	n := 0
	guess := func() (int, ClaimRefusal, answer) {
		n++
		return guessers[n%len(guessers)].claim(t, "GW-1", wrongCode(n))
	}
	for i := range 5 {
		status, r, a := guess()
		if status != http.StatusForbidden || r.Reason != "wrong_code" || r.AttemptsLeft == nil || *r.AttemptsLeft != 4-i {
			t.Fatalf("free failure %d = %d %s; want 403 wrong_code with %d attempts left", i+1, status, a.body, 4-i)
		}
	}
	failures := 5
	for wait := time.Minute; failures < 20; wait *= 2 {
		// A failure beyond the free ones sets the next back-off.
		if status, r, a := guess(); status != http.StatusForbidden || r.Reason != "wrong_code" {
			t.Fatalf("failure %d = %d %s; want 403 wrong_code", failures+1, status, a.body)
		}
		failures++
		if failures == 20 {
			break
		}
		status, r, a := guess()
		if status != http.StatusTooManyRequests || r.Scope != ScopeGateway || a.header.Get("Retry-After") != strconv.Itoa(int(min(wait, 24*time.Hour).Seconds())) {
			t.Fatalf("after failure %d: %d %s Retry-After %q; want 429 for the gateway, retry after %v",
				failures, status, a.body, a.header.Get("Retry-After"), min(wait, 24*time.Hour))
		}
		env.clock.Advance(min(wait, 24*time.Hour))
	}
	// Locked: no wait lifts it, and the right code is refused like a guess.
	env.clock.Advance(48 * time.Hour)
	installer := env.user(t, "ina", "acme", RoleInstaller, "127.0.0.2")
	code := DisplayCode(creds.ClaimSecret, "GW-1", env.clock.Now())
	if status, r, a := installer.claim(t, "GW-1", code); status != http.StatusLocked || r.Reason != "locked" {
		t.Fatalf("right code on a locked gateway = %d %s; want 423 locked", status, a.body)
	}
	if status, _, _ := guess(); status != http.StatusLocked {
		t.Fatalf("guess on a locked gateway = %d; want 423", status)
	}
	// An operator unlocks it; the rightful installer claims.
	olga := env.user(t, "olga", "acme", RoleOperator, "127.0.0.3")
	a := olga.do(t, "POST", "/v1/devices/GW-1/unlock", "")
	var res UnlockResult
	if err := json.Unmarshal([]byte(a.body), &res); a.status != 200 || err != nil || !res.WasLocked || res.Failures != 20 {
		t.Fatalf("unlock = %d %s; want 200 was_locked with 20 failures", a.status, a.body)
	}
	status, _, a := installer.claim(t, "GW-1", code)
	var ans ClaimAnswer
	if err := json.Unmarshal([]byte(a.body), &ans); status != 200 || err != nil || ans.Device.Org != "acme" || ans.Device.State != StateClaimed || ans.Code != "display" {
		t.Fatalf("claim after unlock = %d %s; want claimed by acme", status, a.body)
	}
	// 20 failures, a 429 between each two past the fifth, two refusals
	// while locked, one lock, one claim; eight users logged in.
	wantCounts(t, env.metrics, "gwpki_claim_attempts_total", map[string]int{
		"wrong_code": 20, "limited": 14, "locked": 2, "claimed": 1, "typo": 0, "error": 0,
	})
	wantCounts(t, env.metrics, "gwpki_claim_locks_total", map[string]int{"": 1})
	wantCounts(t, env.metrics, "gwpki_logins_total", map[string]int{"ok": 8, "refused": 0, "limited": 0})
}

// TestClaimBackoffPassesForTheRightCode: after a back-off, the right code
// from a fresh installer claims; and the claim button lifts a back-off too.
func TestClaimBackoffPassesForTheRightCode(t *testing.T) {
	env := newClaimEnv(t)
	creds := env.register(t, "GW-1")
	env.register(t, "GW-2")
	mallory := env.user(t, "mallory", "evil", RoleInstaller, "127.0.0.10")
	trudy := env.user(t, "trudy", "evil", RoleInstaller, "127.0.0.11")
	for i := range 6 {
		mallory.claim(t, "GW-1", wrongCode(i))
		trudy.claim(t, "GW-2", wrongCode(i))
	}
	ina := env.user(t, "ina", "acme", RoleInstaller, "127.0.0.2")
	code := DisplayCode(creds.ClaimSecret, "GW-1", env.clock.Now())
	if status, r, _ := ina.claim(t, "GW-1", code); status != http.StatusTooManyRequests || r.Scope != ScopeGateway {
		t.Fatalf("right code during back-off = %d %+v; want 429 for the gateway", status, r)
	}
	env.clock.Advance(time.Minute)
	code = DisplayCode(creds.ClaimSecret, "GW-1", env.clock.Now())
	if status, _, a := ina.claim(t, "GW-1", code); status != http.StatusOK {
		t.Fatalf("right code after the back-off = %d %s; want 200", status, a.body)
	}

	// GW-2 waits out its back-off too, until its button is pressed.
	env.clock.Advance(-time.Minute)
	nobody := &claimClient{env: env, http: env.client(t, "127.0.0.4")}
	if a := nobody.do(t, "POST", "/v1/gateway/claim-button", ""); a.status != http.StatusUnauthorized {
		t.Fatalf("claim button without a gateway certificate = %d %s; want 401", a.status, a.body)
	}
	env.button = "GW-2"
	a := nobody.do(t, "POST", "/v1/gateway/claim-button", "")
	var res UnlockResult
	if err := json.Unmarshal([]byte(a.body), &res); a.status != 200 || err != nil || res.Failures != 6 {
		t.Fatalf("claim button = %d %s; want 200 with 6 failures cleared", a.status, a.body)
	}
	creds2 := env.reg.credentials("GW-2", 1)
	if status, _, a := ina.claim(t, "GW-2", creds2.LabelCode); status != http.StatusOK {
		t.Fatalf("label code after the button = %d %s; want 200", status, a.body)
	}
	page, err := env.audit.List(context.Background(), audit.Query{Action: "unlock"})
	if err != nil || len(page.Entries) != 1 || page.Entries[0].Actor != "gateway:GW-2" || page.Entries[0].Detail["via"] != "claim-button" {
		t.Fatalf("unlock audit = %+v, %v; want one entry by gateway:GW-2 via claim-button", page.Entries, err)
	}
}

// TestClaimUserAndSourceLimits: one user gets 10 attempts an hour whatever
// the gateways; one address 30 whatever the users.
func TestClaimUserAndSourceLimits(t *testing.T) {
	env := newClaimEnv(t)
	for i := range 40 {
		env.register(t, fmt.Sprintf("GW-%d", i))
	}
	ivan := env.user(t, "ivan", "evil", RoleInstaller, "127.0.0.20")
	for i := range 10 {
		if status, _, a := ivan.claim(t, fmt.Sprintf("GW-%d", i), wrongCode(i)); status != http.StatusForbidden {
			t.Fatalf("attempt %d of the user = %d %s; want 403", i+1, status, a.body)
		}
	}
	status, r, a := ivan.claim(t, "GW-39", wrongCode(99))
	if status != http.StatusTooManyRequests || r.Scope != ScopeUser || a.header.Get("Retry-After") != "3600" {
		t.Fatalf("11th attempt of the user in an hour = %d %s; want 429 for the user, retry after 3600", status, a.body)
	}
	env.clock.Advance(time.Hour)
	if status, _, a := ivan.claim(t, "GW-39", wrongCode(99)); status != http.StatusForbidden {
		t.Fatalf("the user an hour later = %d %s; want 403 (counted again)", status, a.body)
	}

	// Three users behind one address: 30 attempts, then the address waits.
	var shared []*claimClient
	for i := range 4 {
		shared = append(shared, env.user(t, fmt.Sprintf("nat%d", i), "evil", RoleInstaller, "127.0.0.30"))
	}
	for i := range 30 {
		if status, _, a := shared[i/10].claim(t, fmt.Sprintf("GW-%d", i), wrongCode(1000+i)); status != http.StatusForbidden {
			t.Fatalf("attempt %d from the address = %d %s; want 403", i+1, status, a.body)
		}
	}
	if status, r, a := shared[3].claim(t, "GW-35", wrongCode(2000)); status != http.StatusTooManyRequests || r.Scope != ScopeSource {
		t.Fatalf("31st attempt from one address = %d %s; want 429 for the source", status, a.body)
	}
}

// TestClaimTyposNeverCount: a thousand typos and malformed codes later, the
// gateway has no failure and its code claims.
func TestClaimTyposNeverCount(t *testing.T) {
	env := newClaimEnv(t)
	creds := env.register(t, "GW-1")
	ina := env.user(t, "ina", "acme", RoleInstaller, "127.0.0.2")
	code := DisplayCode(creds.ClaimSecret, "GW-1", env.clock.Now())
	typo := code[:len(code)-1] + string(checkAlphabet[(strings.IndexByte(checkAlphabet, code[len(code)-1])+1)%37])
	for i := range 1000 {
		c, reason := typo, "typo"
		if i%2 == 1 {
			c, reason = strings.Repeat("Z", 3+i%5), "malformed"
		}
		if status, r, a := ina.claim(t, "GW-1", c); status != http.StatusBadRequest || r.Reason != reason {
			t.Fatalf("code %q = %d %s; want 400 %s", c, status, a.body, reason)
		}
	}
	if st, err := env.claims.attempts.Gateway(context.Background(), "GW-1"); err != nil || st.Total != 0 {
		t.Fatalf("gateway attempts after typos = %+v, %v; want none", st, err)
	}
	if status, _, a := ina.claim(t, "gw-1", code); status != http.StatusForbidden {
		// Serials are exact: gw-1 is another (unknown) gateway.
		t.Fatalf("claim of gw-1 = %d %s; want 403 wrong code", status, a.body)
	}
	if status, _, a := ina.claim(t, "GW-1", strings.ToLower(code)); status != http.StatusOK {
		t.Fatalf("claim with the code in lower case = %d %s; want 200", status, a.body)
	}
	wantCounts(t, env.metrics, "gwpki_claim_attempts_total", map[string]int{
		"typo": 500, "malformed": 500, "wrong_code": 1, "claimed": 1,
	})
}

// TestClaimAnswers covers what a right code learns and what a wrong one
// does not, ownership and unclaim.
func TestClaimAnswers(t *testing.T) {
	env := newClaimEnv(t)
	creds := env.register(t, "GW-1")
	ina := env.user(t, "ina", "acme", RoleInstaller, "127.0.0.2")
	ivan := env.user(t, "ivan", "globex", RoleInstaller, "127.0.0.3")
	olga := env.user(t, "olga", "acme", RoleOperator, "127.0.0.4")
	oscar := env.user(t, "oscar", "globex", RoleOperator, "127.0.0.5")

	// An unknown serial is answered like a registered one.
	_, r1, a1 := ivan.claim(t, "GW-1", wrongCode(1))
	_, r2, a2 := ivan.claim(t, "GW-404", wrongCode(1))
	if a1.status != a2.status || *r1.AttemptsLeft != *r2.AttemptsLeft || r1.Error != r2.Error || r1.Hint != r2.Hint {
		t.Errorf("wrong code on a registered gateway = %d %s; on an unknown one = %d %s; want the same", a1.status, a1.body, a2.status, a2.body)
	}

	label := creds.LabelCode
	if status, _, a := ina.claim(t, "GW-1", label); status != http.StatusOK {
		t.Fatalf("claim with the label code = %d %s", status, a.body)
	}
	for _, tc := range []struct {
		who    *claimClient
		code   string
		status int
		reason string
		not    string
	}{
		{ivan, wrongCode(2), http.StatusForbidden, "wrong_code", "claimed"},
		{ivan, DisplayCode(creds.ClaimSecret, "GW-1", env.clock.Now()), http.StatusConflict, "already_claimed", "acme"},
		{ina, DisplayCode(creds.ClaimSecret, "GW-1", env.clock.Now()), http.StatusConflict, "already_claimed", ""},
	} {
		status, r, a := tc.who.claim(t, "GW-1", tc.code)
		if status != tc.status || r.Reason != tc.reason || tc.not != "" && strings.Contains(a.body, tc.not) {
			t.Errorf("claim = %d %s; want %d %s without %q", status, a.body, tc.status, tc.reason, tc.not)
		}
	}

	// Only the owning organisation's operators unclaim.
	if a := oscar.do(t, "POST", "/v1/devices/GW-1/unclaim", ""); a.status != http.StatusNotFound {
		t.Errorf("unclaim by another organisation = %d %s; want 404", a.status, a.body)
	}
	if a := ina.do(t, "POST", "/v1/devices/GW-1/unclaim", ""); a.status != http.StatusForbidden {
		t.Errorf("unclaim by an installer = %d %s; want 403", a.status, a.body)
	}
	a := olga.do(t, "POST", "/v1/devices/GW-1/unclaim", "")
	var un UnclaimAnswer
	if err := json.Unmarshal([]byte(a.body), &un); a.status != 200 || err != nil || un.Device.State != StateUnclaimed || un.Device.Org != "" || len(un.Revoked) != 1 {
		t.Fatalf("unclaim = %d %s; want 200 unclaimed with its certificates revoked", a.status, a.body)
	}
	if got := env.revoked.calls; len(got) != 1 || got[0] != "GW-1 by user:olga" {
		t.Errorf("revocations = %v; want GW-1's by user:olga", got)
	}
	// The label code stays spent; a fresh display code claims for globex.
	if status, r, _ := ivan.claim(t, "GW-1", label); status != http.StatusConflict || r.Reason != "code_used" {
		t.Errorf("spent label code = %d %+v; want 409 code_used", status, r)
	}
	if status, _, a := ivan.claim(t, "GW-1", DisplayCode(creds.ClaimSecret, "GW-1", env.clock.Now())); status != http.StatusOK || !strings.Contains(a.body, `"org":"globex"`) {
		t.Errorf("transfer claim = %d %s; want claimed by globex", status, a.body)
	}
	// The display code that claimed is spent after an unclaim.
	if a := oscar.do(t, "POST", "/v1/devices/GW-1/unclaim", ""); a.status != 200 {
		t.Fatalf("unclaim by globex = %d %s", a.status, a.body)
	}
	if status, r, _ := ina.claim(t, "GW-1", DisplayCode(creds.ClaimSecret, "GW-1", env.clock.Now())); status != http.StatusConflict || r.Reason != "code_used" {
		t.Errorf("replayed display code = %d %+v; want 409 code_used", status, r)
	}
	env.clock.Advance(DisplayWindow)
	if status, _, a := ina.claim(t, "GW-1", DisplayCode(creds.ClaimSecret, "GW-1", env.clock.Now())); status != http.StatusOK {
		t.Errorf("next window's display code = %d %s; want 200", status, a.body)
	}

	wantCounts(t, env.metrics, "gwpki_claim_attempts_total", map[string]int{
		"claimed": 3, "wrong_code": 3, "already_claimed": 2, "code_used": 2,
	})

	// Bad requests.
	for _, tc := range []struct{ body, want string }{
		{`{"serial":"GW-1"}`, "serial and code are required"},
		{`{"serial":"GW 1","code":"0000-0000-0"}`, "invalid serial"},
		{`{"serial":"GW-1","code":"0000-0000-0","x":1}`, "unknown field"},
		{`not json`, "malformed JSON"},
	} {
		if a := ina.do(t, "POST", "/v1/claims", tc.body); a.status != http.StatusBadRequest || !strings.Contains(a.body, tc.want) {
			t.Errorf("POST /v1/claims %s = %d %s; want 400 %q", tc.body, a.status, a.body, tc.want)
		}
	}
	// No code anywhere in the audit log.
	page, err := env.audit.List(context.Background(), audit.Query{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(page)
	if strings.Contains(string(b), label) || strings.Contains(string(b), strings.ReplaceAll(label, "-", "")) {
		t.Errorf("the audit log holds the label code")
	}
}

// TestClaimIsOnceUnderRace: parallel right codes from two organisations
// claim the gateway once.
func TestClaimIsOnceUnderRace(t *testing.T) {
	env := newClaimEnv(t)
	creds := env.register(t, "GW-1")
	a := env.user(t, "ina", "acme", RoleInstaller, "127.0.0.2")
	b := env.user(t, "ivan", "globex", RoleInstaller, "127.0.0.3")
	code := DisplayCode(creds.ClaimSecret, "GW-1", env.clock.Now())
	var wg sync.WaitGroup
	statuses := make([]int, 8)
	for i := range statuses {
		wg.Go(func() {
			c := a
			if i%2 == 1 {
				c = b
			}
			statuses[i], _, _ = c.claim(t, "GW-1", code)
		})
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		if s == http.StatusOK {
			ok++
		} else if s != http.StatusConflict {
			t.Errorf("parallel claim = %d; want 200 or 409", s)
		}
	}
	if ok != 1 {
		t.Errorf("%d parallel claims succeeded; want exactly 1 (%v)", ok, statuses)
	}
}
