package tui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/go-chi/chi/v5"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/httpapi"
	"github.com/gwpki/gwpki/tui/common"
)

// fleetNow is the clock of the fleet tests: the fake sources' times are
// relative to it, so the goldens do not change with the day.
var fleetNow = time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC)

// fakeFleet stands in for the broker, telemetry store and CA behind the
// fleet columns and the detail page; its revoke route marks the gateway's
// certificates revoked.
type fakeFleet struct {
	mu      sync.Mutex
	revoked map[string]string // serial -> reason
	calls   int               // list pages asked (every LastSeen of a page's first device)
}

func newFakeFleet() *fakeFleet { return &fakeFleet{revoked: map[string]string{}} }

// num is the number at the end of a serial such as GW-000042.
func num(serial string) int {
	var n int
	fmt.Sscanf(serial[strings.LastIndex(serial, "-")+1:], "%d", &n)
	return n
}

func (f *fakeFleet) sources() claim.FleetSources {
	return claim.FleetSources{
		Online: func(gw string) bool { return num(gw)%2 == 0 },
		LastSeen: func(_ context.Context, gw string) (time.Time, error) {
			if num(gw)%5 == 0 {
				return time.Time{}, nil
			}
			return fleetNow.Add(-time.Duration(num(gw)*7) * time.Second), nil
		},
		CertNotAfter: func(_ context.Context, gw string) (time.Time, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if _, ok := f.revoked[gw]; ok {
				return time.Time{}, nil
			}
			return fleetNow.Add(7 * 24 * time.Hour), nil
		},
		Certificates: func(_ context.Context, gw string) ([]claim.DeviceCertificate, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			op := claim.DeviceCertificate{Serial: "18eb850a2a11b912", Kind: claim.CertKindOperational,
				NotBefore: fleetNow.Add(-time.Hour), NotAfter: fleetNow.Add(7 * 24 * time.Hour), Status: claim.CertStatusGood}
			birth := claim.DeviceCertificate{Serial: "18eb850a27fe146a", Kind: claim.CertKindBirth,
				NotBefore: fleetNow.Add(-48 * time.Hour), NotAfter: fleetNow.Add(20 * 365 * 24 * time.Hour), Status: claim.CertStatusGood}
			if reason, ok := f.revoked[gw]; ok {
				for _, c := range []*claim.DeviceCertificate{&op, &birth} {
					c.Status, c.RevocationReason, c.RevokedAt = claim.CertStatusRevoked, reason, fleetNow
				}
			}
			return []claim.DeviceCertificate{op, birth}, nil
		},
		Telemetry: func(_ context.Context, gw, metric string, n int) (claim.TelemetrySummary, error) {
			s := claim.TelemetrySummary{Metric: metric,
				Latest: &claim.TelemetryMessage{Topic: "gw/" + gw + "/telemetry", Time: fleetNow.Add(-3 * time.Second),
					Payload: json.RawMessage(`{"flow_m3h":41.2,"pressure_bar":3.1}`)}}
			for i := range 24 {
				s.Series = append(s.Series, claim.MetricPoint{Time: fleetNow.Add(time.Duration(i-24) * time.Minute),
					Value: 40 + 5*float64((i*7)%11)/10})
			}
			return s, nil
		},
	}
}

// handleRevoke answers POST /v1/devices/{serial}/revoke like the CA does.
func (f *fakeFleet) handleRevoke(w http.ResponseWriter, r *http.Request) {
	var req ca.RevokeRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		httpapi.WriteError(w, r, httpapi.Errorf(http.StatusBadRequest, "malformed JSON"))
		return
	}
	gw := chi.URLParam(r, "serial")
	f.mu.Lock()
	_, already := f.revoked[gw]
	f.revoked[gw] = req.Reason
	f.mu.Unlock()
	resp := ca.RevokeResponse{Gateway: gw}
	if already {
		resp.AlreadyRevoked = 2
	} else {
		for _, s := range []string{"1000001", "1000002"} {
			resp.Revoked = append(resp.Revoked, ca.RevokedSerial{Serial: s, Gateway: gw, RevokedAt: fleetNow, Reason: req.Reason})
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, resp)
}

// fleetEnv is apiEnv with n gateways registered and claimed into acme.
func fleetEnv(t *testing.T, n int) *apiEnv {
	t.Helper()
	env := newAPIEnv(t)
	for i := 1; i <= n; i++ {
		serial := fmt.Sprintf("GW-%06d", i)
		creds := env.register(t, serial)
		_, _, err := env.claims.Claim(context.Background(), claim.ClaimRequest{Serial: serial,
			Code: claim.DisplayCode(creds.ClaimSecret, serial, time.Now()),
			User: claim.User{Username: "ines", Org: "acme", Role: claim.RoleInstaller}, Source: "192.0.2.9:1"})
		if err != nil {
			t.Fatal(err)
		}
	}
	return env
}

// fixedClock is a Common with the fleet tests' clock.
func fixedClock() *common.Common {
	c := common.New()
	c.Now = func() time.Time { return fleetNow }
	return &c
}

// TestTUIFleetTable: the operator opens the fleet, pages forward and back,
// sorts, and filters; the table fits 80x24.
func TestTUIFleetTable(t *testing.T) {
	env := fleetEnv(t, 30)
	tm := start(t, Options{Client: env.login(t, "otto"), Common: fixedClock()})
	waitFor(t, tm, "Fleet")
	tm.Send(keyMsg(tea.KeyDown))
	tm.Send(keyMsg(tea.KeyEnter))
	waitFor(t, tm, "GW-000017")
	tm.Type("n")
	waitFor(t, tm, "GW-000030")
	tm.Type("p")
	tm.Type("o")
	waitFor(t, tm, "sorted by serial ↓")
	tm.Type("/")
	tm.Type("00002")
	waitFor(t, tm, "11 shown") // the debounced filter, while the box is open
	tm.Send(keyMsg(tea.KeyEnter))
	waitFor(t, tm, "filter: 00002")
	m := final(t, tm)
	f := m.Fleet()
	if q := f.Query(); q.Search != "00002" || !q.Desc || q.After != "" {
		t.Errorf("query = %+v; want q=00002, descending, first page", q)
	}
	var got []string
	for _, d := range f.Rows() {
		got = append(got, d.Serial)
	}
	if want := "GW-000029 GW-000028 GW-000027 GW-000026 GW-000025 GW-000024 GW-000023 GW-000022 GW-000021 GW-000020 GW-000002"; strings.Join(got, " ") != want {
		t.Errorf("rows = %v; want %s", got, want)
	}
	golden.RequireEqual(t, env.screen(m.View()))
}

// TestTUIFleetNarrow: at 60 columns the table drops columns rather than
// wrapping, and every line of the table, the detail page and the audit
// log fits.
func TestTUIFleetNarrow(t *testing.T) {
	env := fleetEnv(t, 3)
	m := New(Options{Client: env.login(t, "otto"), Common: fixedClock()})
	for _, size := range []tea.WindowSizeMsg{{Width: 80, Height: 24}, {Width: 60, Height: 16}, {Width: 120, Height: 40}} {
		next, _ := m.Update(size)
		m = next.(Model)
		next, cmd := m.Update(common.GoMsg{Page: common.PageFleet})
		m = next.(Model)
		// Run the first page's request (the batch's first command).
		m = runBatchFirst(t, m, cmd)
		view := ansi.Strip(m.View())
		lines := strings.Split(view, "\n")
		if len(lines) != size.Height {
			t.Errorf("%dx%d: %d lines", size.Width, size.Height, len(lines))
		}
		for i, l := range lines {
			if w := ansi.StringWidth(l); w > size.Width {
				t.Errorf("%dx%d: line %d is %d wide: %q", size.Width, size.Height, i, w, l)
			}
		}
		if !strings.Contains(view, "GW-000003") || !strings.Contains(view, "LAST SEEN") {
			t.Errorf("%dx%d: table:\n%s", size.Width, size.Height, view)
		}
		d := runPage(t, m, common.GoMsg{Page: common.PageDetail, Serial: "GW-000002"})
		view = ansi.Strip(d.View())
		lines = strings.Split(view, "\n")
		if len(lines) != size.Height || !strings.Contains(view, "flow_m3h ") {
			t.Errorf("%dx%d: detail page of %d lines:\n%s", size.Width, size.Height, len(lines), view)
		}
		for i, l := range lines {
			if w := ansi.StringWidth(l); w > size.Width {
				t.Errorf("%dx%d: detail line %d is %d wide: %q", size.Width, size.Height, i, w, l)
			}
		}
		a := runPage(t, m, common.GoMsg{Page: common.PageAudit})
		view = ansi.Strip(a.View())
		lines = strings.Split(view, "\n")
		if len(lines) != size.Height || !strings.Contains(view, "GW-000003") {
			t.Errorf("%dx%d: audit page of %d lines:\n%s", size.Width, size.Height, len(lines), view)
		}
		for i, l := range lines {
			if w := ansi.StringWidth(l); w > size.Width {
				t.Errorf("%dx%d: audit line %d is %d wide: %q", size.Width, size.Height, i, w, l)
			}
		}
	}
}

// runBatchFirst runs the first command of a tea.Batch (the request; the
// second is the refresh tick) and feeds its message to m.
func runBatchFirst(t *testing.T, m Model, cmd tea.Cmd) Model {
	t.Helper()
	msg := cmd()
	if b, ok := msg.(tea.BatchMsg); ok {
		msg = b[0]()
	}
	next, _ := m.Update(msg)
	return next.(Model)
}

// TestTUIDetailRevoke: enter on a row opens the gateway's detail page
// (certificates, history, telemetry with its sparkline); R, a reason and
// the typed serial revoke it; the page reloads with the certificates
// revoked; esc goes back to the table.
func TestTUIDetailRevoke(t *testing.T) {
	env := fleetEnv(t, 3)
	tm := start(t, Options{Client: env.login(t, "otto"), Common: fixedClock()})
	waitFor(t, tm, "Fleet")
	tm.Send(keyMsg(tea.KeyDown))
	tm.Send(keyMsg(tea.KeyEnter))
	waitFor(t, tm, "GW-000003")
	tm.Send(keyMsg(tea.KeyDown))
	tm.Send(keyMsg(tea.KeyEnter))
	waitFor(t, tm, "flow_m3h")
	tm.Type("R")
	tm.Send(keyMsg(tea.KeyDown))
	tm.Send(keyMsg(tea.KeyEnter))
	waitFor(t, tm, "Type the serial")
	tm.Type("GW-000001")
	tm.Send(keyMsg(tea.KeyEnter)) // another serial: refused
	for range len("GW-000001") {
		tm.Send(keyMsg(tea.KeyBackspace))
	}
	tm.Type("GW-000002")
	tm.Send(keyMsg(tea.KeyEnter))
	// The status line, then the reloaded page's certificates.
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		s := ansi.Strip(string(b))
		return strings.Contains(s, "Revoked 2 certificate(s) of GW-000002 (keyCompromise)") && strings.Contains(s, "revoked (keyCompromise)")
	}, teatest.WithDuration(10*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
	m := final(t, tm)
	if m.Page() != common.PageDetail || m.Detail().Serial() != "GW-000002" {
		t.Fatalf("page %d serial %q; want the detail of GW-000002", m.Page(), m.Detail().Serial())
	}
	env.fleet.mu.Lock()
	revoked := env.fleet.revoked
	env.fleet.mu.Unlock()
	if len(revoked) != 1 || revoked["GW-000002"] != "keyCompromise" {
		t.Errorf("revoked = %v; want only GW-000002 (keyCompromise)", revoked)
	}
	golden.RequireEqual(t, wallClockMasked(env.screen(m.View())))
}

// wallClockMasked replaces the dates and times of today (registrations
// and claims happen on the wall clock) in a screen.
func wallClockMasked(screen []byte) []byte {
	today := regexp.QuoteMeta(time.Now().UTC().Format("2006-01-02"))
	re := regexp.MustCompile(today + `( \d\d:\d\d)?`)
	return re.ReplaceAllFunc(screen, func(b []byte) []byte {
		if len(b) > 10 {
			return []byte("YYYY-MM-DD hh:mm")
		}
		return []byte("YYYY-MM-DD")
	})
}

// TestTUIDetailUnlockUnclaim: L unlocks (no confirmation), U asks and y
// unclaims; the gateway then is no longer the organisation's, and esc goes
// back to the fleet table, which no longer lists it.
func TestTUIDetailUnlockUnclaim(t *testing.T) {
	env := fleetEnv(t, 2)
	m := New(Options{Client: env.login(t, "otto"), Common: fixedClock()})
	m = run(m, tea.WindowSizeMsg{Width: 80, Height: 24})
	m = runPage(t, m, common.GoMsg{Page: common.PageDetail, Serial: "GW-000001"})
	m = runPage(t, m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("L")})
	if got := m.Detail().Status(); got != "GW-000001 was not locked; 0 failed attempt(s) cleared." {
		t.Errorf("unlock: status %q", got)
	}
	m = runPage(t, m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("U")})
	m = runPage(t, m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("y")})
	if got := m.Detail().Status(); got != "Unclaimed GW-000001; 0 operational certificate(s) revoked." {
		t.Errorf("unclaim: status %q", got)
	}
	if v := ansi.Strip(m.View()); !strings.Contains(v, "load GW-000001: ") {
		t.Errorf("after the unclaim the page should say it is gone:\n%s", v)
	}
	m = runPage(t, m, keyMsg(tea.KeyEsc))
	if m.Page() != common.PageFleet {
		t.Fatalf("esc: page %d; want the fleet", m.Page())
	}
	if rows := m.Fleet().Rows(); len(rows) != 1 || rows[0].Serial != "GW-000002" {
		t.Errorf("fleet rows = %+v; want GW-000002 only", rows)
	}
}

// runPage feeds msg to m and runs the commands it returns, leaving out
// ticks (they would wait): a batch's commands are run one by one.
func runPage(t *testing.T, m Model, msg tea.Msg) Model {
	t.Helper()
	next, cmd := m.Update(msg)
	m = next.(Model)
	var cmds []tea.Cmd
	if cmd != nil {
		cmds = append(cmds, cmd)
	}
	for len(cmds) > 0 {
		c := cmds[0]
		cmds = cmds[1:]
		done := make(chan tea.Msg, 1)
		go func() { done <- c() }()
		var out tea.Msg
		select {
		case out = <-done:
		case <-time.After(200 * time.Millisecond):
			continue // a tick or a blink
		}
		if b, ok := out.(tea.BatchMsg); ok {
			cmds = append(cmds, b...)
			continue
		}
		if out == nil {
			continue
		}
		next, cmd := m.Update(out)
		m = next.(Model)
		if cmd != nil {
			cmds = append(cmds, cmd)
		}
	}
	return m
}

// TestTUIAudit: the operator opens the audit log from the menu, pages to
// older entries, and keeps only the claims.
func TestTUIAudit(t *testing.T) {
	env := fleetEnv(t, 20)
	if _, err := env.claims.Unlock(context.Background(), "GW-000001", claim.User{Username: "otto", Org: "acme", Role: claim.RoleOperator}, "192.0.2.9:1"); err != nil {
		t.Fatal(err)
	}
	tm := start(t, Options{Client: env.login(t, "otto"), Common: fixedClock()})
	waitFor(t, tm, "Audit log")
	tm.Send(keyMsg(tea.KeyDown))
	tm.Send(keyMsg(tea.KeyDown))
	tm.Send(keyMsg(tea.KeyEnter))
	waitFor(t, tm, "unlock")
	tm.Type("n")
	waitFor(t, tm, "page 2")
	tm.Type("/")
	tm.Type("claim")
	tm.Send(keyMsg(tea.KeyEnter))
	// The filter shows at once, the filtered page once its answer is in
	// (GW-000020's claim is the newest, on page 1 only): wait for both in
	// one pass over the output, which arrives in pieces.
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		s := ansi.Strip(string(b))
		return strings.Contains(s, "action: claim") && strings.Contains(s, "GW-000020")
	}, teatest.WithDuration(10*time.Second), teatest.WithCheckInterval(20*time.Millisecond))
	m := final(t, tm)
	a := m.Audit()
	if q := a.Query(); q.Action != "claim" || q.Before != 0 {
		t.Errorf("query = %+v; want action claim from the newest", q)
	}
	if n := len(a.Entries()); n != 17 {
		t.Errorf("%d entries; want a full page of 17", n)
	}
	for _, e := range a.Entries() {
		if e.Action != "claim" || e.Org != "acme" {
			t.Errorf("entry %+v; want acme's claims only", e)
		}
	}
	golden.RequireEqual(t, wallClockMasked(env.screen(m.View())))
}

// failClaims counts n wrong claim codes against serial through the claim
// service, at the times at(0) ... at(n-1) of the attempt limits' clock,
// each by another user from another address; the clock is left at the
// last.
func (env *apiEnv) failClaims(t *testing.T, serial string, n int, at func(i int) time.Time) {
	t.Helper()
	for i := range n {
		env.attemptsClock.Set(at(i))
		code := claim.FormatDisplay([]byte{0, 0, 0, byte(i >> 8), byte(i)})
		_, _, err := env.claims.Claim(context.Background(), claim.ClaimRequest{Serial: serial, Code: code,
			User: claim.User{Username: fmt.Sprintf("eve%d", i), Org: "evil", Role: claim.RoleInstaller}, Source: fmt.Sprintf("192.0.2.%d:1", 100+i)})
		if !errors.Is(err, claim.ErrWrongCode) {
			t.Fatalf("wrong code %d for %s: %v; want a wrong code", i, serial, err)
		}
	}
}

// lockedEnv is fleetEnv with 4 gateways: GW-000002's claims locked by 20
// wrong codes an hour apart, the last 61 minutes before fleetNow;
// GW-000003's in back-off after 6 wrong codes 10 seconds before fleetNow;
// GW-000004 with one wrong code. The limits' clock is left at fleetNow.
func lockedEnv(t *testing.T) *apiEnv {
	t.Helper()
	env := fleetEnv(t, 4)
	const gap = 61 * time.Minute // past every window: no back-off, only the total grows
	env.failClaims(t, "GW-000002", 20, func(i int) time.Time { return fleetNow.Add(-gap * time.Duration(20-i)) })
	env.failClaims(t, "GW-000003", 6, func(int) time.Time { return fleetNow.Add(-10 * time.Second) })
	env.failClaims(t, "GW-000004", 1, func(int) time.Time { return fleetNow.Add(-2 * time.Hour) })
	env.attemptsClock.Set(fleetNow)
	return env
}

// TestTUIFleetLocked: the fleet table says locked for the gateway whose
// claims are locked; a back-off or a failed attempt is no state.
func TestTUIFleetLocked(t *testing.T) {
	env := lockedEnv(t)
	tm := start(t, Options{Client: env.login(t, "otto"), Common: fixedClock()})
	waitFor(t, tm, "Fleet")
	tm.Send(keyMsg(tea.KeyDown))
	tm.Send(keyMsg(tea.KeyEnter))
	waitFor(t, tm, "GW-000004")
	m := final(t, tm)
	var states []string
	for _, d := range m.Fleet().Rows() {
		states = append(states, d.Serial+"="+d.ClaimLock)
	}
	if want := "GW-000001= GW-000002=locked GW-000003=backoff GW-000004="; strings.Join(states, " ") != want {
		t.Errorf("rows %v; want %s", states, want)
	}
	golden.RequireEqual(t, env.screen(m.View()))
}

// TestTUIDetailLocked: the detail page says since when a gateway's claims
// are locked, or until when they back off, beside the unlock action; L
// unlocks and the line goes.
func TestTUIDetailLocked(t *testing.T) {
	env := lockedEnv(t)
	m := New(Options{Client: env.login(t, "otto"), Common: fixedClock()})
	m = run(m, tea.WindowSizeMsg{Width: 80, Height: 24})
	b := runPage(t, m, common.GoMsg{Page: common.PageDetail, Serial: "GW-000003"})
	if v := ansi.Strip(b.View()); !strings.Contains(v, "Claims back off until 08:00:50 (in 50s) after 6 failures · L unlocks") {
		t.Errorf("detail of GW-000003 in back-off:\n%s", v)
	}
	o := runPage(t, m, common.GoMsg{Page: common.PageDetail, Serial: "GW-000004"})
	if v := ansi.Strip(o.View()); !strings.Contains(v, "1 failed claim attempt(s), the last 2026-05-02 06:00 (2h ago)") {
		t.Errorf("detail of GW-000004 with a failed attempt:\n%s", v)
	}
	m = runPage(t, m, common.GoMsg{Page: common.PageDetail, Serial: "GW-000002"})
	golden.RequireEqual(t, wallClockMasked(env.screen(m.View())))
	m = runPage(t, m, tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("L")})
	if got := m.Detail().Status(); got != "Unlocked GW-000002 after 20 failed attempt(s)." {
		t.Errorf("unlock: status %q", got)
	}
	if v := ansi.Strip(m.View()); strings.Contains(v, "Claims locked") || m.Detail().Detail().Device.ClaimLock != "" {
		t.Errorf("after the unlock the page still shows the lock:\n%s", v)
	}
	m = runPage(t, m, keyMsg(tea.KeyEsc))
	for _, d := range m.Fleet().Rows() {
		if d.Serial == "GW-000002" && d.ClaimLock != "" {
			t.Errorf("fleet row of GW-000002 after the unlock: %+v", d)
		}
	}
}
