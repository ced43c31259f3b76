package tui

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/apiclient"
	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/httpapi"
	"github.com/gwpki/gwpki/internal/store"
	"github.com/gwpki/gwpki/tui/common"
	"github.com/gwpki/gwpki/tui/pages/login"
)

// quiet drops the services' logs.
var quiet = slog.New(slog.DiscardHandler)

// apiEnv is the accounts, registry and claim service of gwpki serve on an
// in-process TLS server.
type apiEnv struct {
	srv     *httptest.Server
	rootPEM []byte
	reg     *claim.Registry
	claims  *claim.Claims
	audit   *audit.Log
	fleet   *fakeFleet
	// attemptsClock is the claim attempt limits' clock (the wall clock
	// until a test sets it).
	attemptsClock *testClock
}

// testClock is a clock a test may set; unset, it is the wall clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t.IsZero() {
		return time.Now()
	}
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func newAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	t.Setenv(apiclient.ConfigDirEnv, t.TempDir())
	db, err := store.Open(filepath.Join(t.TempDir(), "gwpki.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	auditLog, err := audit.New(db, audit.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := claim.NewRegistry(db, bytes.Repeat([]byte{7}, 32), auditLog, claim.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	accounts, err := claim.NewAccounts(db, claim.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	attemptsClock := &testClock{}
	attempts, err := claim.NewAttempts(db, claim.Limits{}, claim.WithLogger(quiet), claim.WithClock(attemptsClock.Now))
	if err != nil {
		t.Fatal(err)
	}
	revoke := func(context.Context, string, string, string) ([]string, error) { return nil, nil }
	claims, err := claim.NewClaims(reg, attempts, auditLog, revoke, claim.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	accounts.Routes(r)
	noGateway := func(*http.Request) (string, error) {
		return "", httpapi.Errorf(http.StatusUnauthorized, "no gateway client certificate")
	}
	operator := accounts.RequireRole(claim.RoleOperator)
	claims.Routes(r, accounts.RequireRole(claim.RoleInstaller, claim.RoleOperator), operator, noGateway)
	fleet := newFakeFleet()
	sources := fleet.sources()
	sources.ClaimAttempts = attempts.Gateway // the real limits: their locks show
	reg.SetFleetSources(sources)
	noStation := func(*http.Request) (string, error) {
		return "", httpapi.Errorf(http.StatusUnauthorized, "no station token")
	}
	noCert := func(context.Context, []byte) (claim.CertInfo, error) {
		return claim.CertInfo{}, errors.New("no CA here")
	}
	reg.Routes(r, noStation, noCert, operator, "https://gw.example/v1/bootstrap")
	auditLog.Routes(r, func(r *http.Request) (string, bool) {
		u, ok := claim.UserFromContext(r.Context())
		return u.Org, ok && u.Role == claim.RoleAdmin
	}, operator)
	r.With(operator, reg.Owned).Post("/v1/devices/{serial}/revoke", fleet.handleRevoke)
	srv := httptest.NewUnstartedServer(r)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes of TestTUILoginErrors
	srv.StartTLS()
	t.Cleanup(srv.Close)
	for _, u := range []claim.NewUser{
		{Username: "ines", Org: "acme", Role: claim.RoleInstaller, Password: "ines password"},
		{Username: "otto", Org: "acme", Role: claim.RoleOperator, Password: "otto password"},
	} {
		if _, err := accounts.CreateUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	return &apiEnv{srv: srv, reg: reg, claims: claims, audit: auditLog, fleet: fleet, attemptsClock: attemptsClock,
		rootPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})}
}

// register registers a gateway and returns its claim credentials.
func (env *apiEnv) register(t *testing.T, serial string) claim.Credentials {
	t.Helper()
	_, creds, _, err := env.reg.Register(context.Background(), claim.RegisterRequest{
		Serial: serial, Model: "m1", Station: "line1", Source: "192.0.2.5:4711",
		Cert: claim.CertInfo{Serial: "1000001", GatewaySerial: serial, Station: "line1",
			NotAfter: time.Date(2050, 1, 1, 0, 0, 0, 0, time.UTC)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// login logs user in through the API client, as a saved session would.
func (env *apiEnv) login(t *testing.T, user string) *apiclient.Client {
	t.Helper()
	c, err := apiclient.Login(context.Background(), env.srv.URL, env.rootPEM, user, user+" password")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// screen is a view as the golden files keep it: no escape codes, the test
// server's address replaced.
func (env *apiEnv) screen(view string) []byte {
	return []byte(strings.ReplaceAll(ansi.Strip(view), env.srv.URL, "https://127.0.0.1:PORT"))
}

func keyMsg(t tea.KeyType) tea.KeyMsg { return tea.KeyMsg{Type: t} }

// waitFor waits until the program's output holds text.
func waitFor(t *testing.T, tm *teatest.TestModel, text string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return strings.Contains(ansi.Strip(string(b)), text) },
		teatest.WithDuration(10*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
}

// final quits the program and returns its last model.
func final(t *testing.T, tm *teatest.TestModel) Model {
	t.Helper()
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	return tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(Model)
}

func start(t *testing.T, o Options) *teatest.TestModel {
	t.Helper()
	return teatest.NewTestModel(t, New(o), teatest.WithInitialTermSize(80, 24))
}

// TestTUILoginFlow: a wrong password says so, the right one opens the home
// screen with the user, organisation, role and the claim screen.
func TestTUILoginFlow(t *testing.T) {
	env := newAPIEnv(t)
	tm := start(t, Options{Login: login.Defaults{Server: env.srv.URL, RootPEM: env.rootPEM}})
	tm.Type("ines")
	tm.Send(keyMsg(tea.KeyEnter))
	tm.Type("wrong")
	tm.Send(keyMsg(tea.KeyEnter))
	waitFor(t, tm, "log in: wrong username or password")
	tm.Type("ines password")
	tm.Send(keyMsg(tea.KeyEnter))
	waitFor(t, tm, "Claim a gateway")
	m := final(t, tm)
	if m.Page() != common.PageHome {
		t.Fatalf("page = %v; want home", m.Page())
	}
	golden.RequireEqual(t, env.screen(m.View()))
	// The session was saved for the CLI and the next start.
	c, err := apiclient.Load()
	if err != nil || c.Session().Username != "ines" || c.Session().Org != "acme" {
		t.Fatalf("saved session = %+v, %v", c, err)
	}
}

// TestTUIClaimTypoThenRight: a typo shows before anything is sent; the
// right code claims into the user's organisation.
func TestTUIClaimTypoThenRight(t *testing.T) {
	env := newAPIEnv(t)
	creds := env.register(t, "GW-000042")
	code := claim.DisplayCode(creds.ClaimSecret, "GW-000042", time.Now())
	typo := code[:len(code)-1] + otherCheck(code[len(code)-1])
	tm := start(t, Options{Client: env.login(t, "ines")})
	waitFor(t, tm, "Claim a gateway")
	tm.Send(keyMsg(tea.KeyEnter))
	waitFor(t, tm, "Serial")
	tm.Type("GW-000042")
	tm.Send(keyMsg(tea.KeyTab))
	tm.Type(strings.ToLower(strings.ReplaceAll(typo, "-", "")))
	waitFor(t, tm, "typo: the last symbol")
	tm.Send(keyMsg(tea.KeyEnter)) // refused locally
	tm.Send(keyMsg(tea.KeyBackspace))
	tm.Type(code[len(code)-1:])
	waitFor(t, tm, "check symbol matches")
	tm.Send(keyMsg(tea.KeyEnter))
	waitFor(t, tm, "Claimed GW-000042")
	m := final(t, tm)
	if r := m.Claim().Result(); r == nil || r.Answer == nil || r.Answer.Device.Org != "acme" {
		t.Fatalf("result = %+v; want claimed into acme", r)
	}
	golden.RequireEqual(t, env.screen(m.View()))
}

// TestTUIClaimWrongCode: a wrong (but well-formed) code says how many
// attempts are left.
func TestTUIClaimWrongCode(t *testing.T) {
	env := newAPIEnv(t)
	env.register(t, "GW-000043")
	wrong := claim.FormatDisplay([]byte{1, 2, 3, 4, 5})
	tm := start(t, Options{Client: env.login(t, "ines")})
	waitFor(t, tm, "Claim a gateway")
	tm.Send(keyMsg(tea.KeyEnter))
	waitFor(t, tm, "Serial")
	tm.Type("GW-000043")
	tm.Send(keyMsg(tea.KeyEnter)) // to the code field
	tm.Type(wrong)
	tm.Send(keyMsg(tea.KeyEnter))
	waitFor(t, tm, "attempts left")
	m := final(t, tm)
	golden.RequireEqual(t, env.screen(m.View()))
}

// otherCheck returns a check symbol other than c.
func otherCheck(c byte) string {
	if c == '0' {
		return "1"
	}
	return "0"
}

// run feeds msg to m and then the messages of the commands it returns,
// depth first, as the program would (skipping blink and quit).
func run(m Model, msg tea.Msg) Model {
	next, cmd := m.Update(msg)
	m = next.(Model)
	for _, c := range flatten(cmd) {
		out := c()
		switch out.(type) {
		case nil, tea.QuitMsg:
			continue
		}
		if fmt.Sprintf("%T", out) == "textinput.blinkMsg" || fmt.Sprintf("%T", out) == "cursor.BlinkMsg" || fmt.Sprintf("%T", out) == "cursor.initialBlinkMsg" {
			continue
		}
		m = run(m, out)
	}
	return m
}

func flatten(cmd tea.Cmd) []tea.Cmd {
	if cmd == nil {
		return nil
	}
	return []tea.Cmd{cmd}
}

func typeInto(m Model, s string) Model {
	for _, r := range s {
		next, _ := m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
		m = next.(Model)
	}
	return m
}

// TestTUILoginErrors: an unreachable server and a server whose certificate
// does not chain to the root each give one clear line.
func TestTUILoginErrors(t *testing.T) {
	env := newAPIEnv(t)
	other := httptest.NewTLSServer(http.NotFoundHandler())
	closed := other.URL
	other.Close()
	// httptest servers share one certificate: make a root that differs.
	otherRoot := testRootOtherThan(t)
	for _, tc := range []struct {
		name, server string
		root         []byte
		want         string
	}{
		{"unreachable", closed, env.rootPEM, "log in: connection refused: is gwpki serve running there?"},
		{"other root", env.srv.URL, otherRoot, "log in: the server's certificate is not signed by this root; check the root CA path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(Options{Login: login.Defaults{Server: tc.server, RootPEM: tc.root, Username: "ines"}})
			m = typeInto(m, "ines password")
			m = run(m, keyMsg(tea.KeyEnter))
			if got := m.Login().Err(); got != tc.want {
				t.Errorf("error = %q; want %q", got, tc.want)
			}
		})
	}
}

// testRootOtherThan returns a self-signed CA certificate that is not the
// test server's.
func testRootOtherThan(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestTUIResize: the screen fills the window it is given, the help bar on
// its last line, at 80x24 and after a resize.
func TestTUIResize(t *testing.T) {
	env := newAPIEnv(t)
	m := New(Options{Client: env.login(t, "ines")})
	for _, size := range []tea.WindowSizeMsg{{Width: 80, Height: 24}, {Width: 120, Height: 40}, {Width: 60, Height: 16}} {
		next, _ := m.Update(size)
		m = next.(Model)
		for _, page := range []common.Page{common.PageHome, common.PageClaim} {
			next, _ = m.Update(common.GoMsg{Page: page})
			m = next.(Model)
			lines := strings.Split(ansi.Strip(m.View()), "\n")
			if len(lines) != size.Height {
				t.Errorf("%dx%d page %d: %d lines", size.Width, size.Height, page, len(lines))
			}
			for i, l := range lines {
				if w := ansi.StringWidth(l); w > size.Width {
					t.Errorf("%dx%d page %d: line %d is %d wide: %q", size.Width, size.Height, page, i, w, l)
				}
			}
			if !strings.Contains(lines[len(lines)-1], " • ") {
				t.Errorf("%dx%d page %d: last line %q; want the help bar", size.Width, size.Height, page, lines[len(lines)-1])
			}
		}
	}
}

// TestTUIHomeByRole: the menu lists only the screens a role may use and
// that exist.
func TestTUIHomeByRole(t *testing.T) {
	env := newAPIEnv(t)
	for _, tc := range []struct {
		user  string
		fleet bool
	}{{"ines", false}, {"otto", true}} {
		user := tc.user
		m := New(Options{Client: env.login(t, user)})
		view := ansi.Strip(m.View())
		if !strings.Contains(view, "Claim a gateway") || strings.Contains(view, "Fleet") != tc.fleet {
			t.Errorf("%s: home menu (fleet %v):\n%s", user, tc.fleet, view)
		}
		m = run(m, keyMsg(tea.KeyEnter))
		if m.Page() != common.PageClaim {
			t.Errorf("%s: enter on the menu opened page %d; want claim", user, m.Page())
		}
		m = run(m, keyMsg(tea.KeyEsc))
		if m.Page() != common.PageHome {
			t.Errorf("%s: esc on the claim page gave page %d; want home", user, m.Page())
		}
	}
}

// TestTUIClaimTypoScreen: the claim form with a typo in the code, as it is
// shown before anything is sent.
func TestTUIClaimTypoScreen(t *testing.T) {
	env := newAPIEnv(t)
	m := New(Options{Client: env.login(t, "ines")})
	next, _ := m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	m = next.(Model)
	m = run(m, keyMsg(tea.KeyEnter))
	m = typeInto(m, "GW-000042")
	next, _ = m.Update(keyMsg(tea.KeyTab))
	m = next.(Model)
	code := claim.FormatDisplay([]byte{1, 2, 3, 4, 5})
	m = typeInto(m, strings.ToLower(strings.ReplaceAll(code[:len(code)-1]+otherCheck(code[len(code)-1]), "-", "")))
	golden.RequireEqual(t, env.screen(m.View()))
}
