package tui

import (
	"bytes"
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
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

// apiEnv is the accounts, registry and claim service of gwpki serve on an
// in-process TLS server.
type apiEnv struct {
	srv     *httptest.Server
	rootPEM []byte
	reg     *claim.Registry
}

func newAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	t.Setenv(apiclient.ConfigDirEnv, t.TempDir())
	db, err := store.Open(filepath.Join(t.TempDir(), "gwpki.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	auditLog, err := audit.New(db)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := claim.NewRegistry(db, bytes.Repeat([]byte{7}, 32), auditLog)
	if err != nil {
		t.Fatal(err)
	}
	accounts, err := claim.NewAccounts(db)
	if err != nil {
		t.Fatal(err)
	}
	attempts, err := claim.NewAttempts(db, claim.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	revoke := func(context.Context, string, string, string) ([]string, error) { return nil, nil }
	claims, err := claim.NewClaims(reg, attempts, auditLog, revoke)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	accounts.Routes(r)
	noGateway := func(*http.Request) (string, error) {
		return "", httpapi.Errorf(http.StatusUnauthorized, "no gateway client certificate")
	}
	claims.Routes(r, accounts.RequireRole(claim.RoleInstaller, claim.RoleOperator), accounts.RequireRole(claim.RoleOperator), noGateway)
	srv := httptest.NewTLSServer(r)
	t.Cleanup(srv.Close)
	for _, u := range []claim.NewUser{
		{Username: "ines", Org: "acme", Role: claim.RoleInstaller, Password: "ines password"},
		{Username: "otto", Org: "acme", Role: claim.RoleOperator, Password: "otto password"},
	} {
		if _, err := accounts.CreateUser(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	return &apiEnv{srv: srv, reg: reg,
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
