package detail

import (
	"errors"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	gwclaim "github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/tui/common"
)

func loaded(serial string) Model {
	c := common.New()
	c.Now = func() time.Time { return time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC) }
	m := New(c, serial)
	m.Init()
	m, _ = m.Update(DetailMsg{ID: m.reqID, Detail: gwclaim.DeviceDetail{Device: gwclaim.Device{Serial: serial, State: "claimed", Org: "acme"}}})
	return m
}

func keys(m Model, ks ...tea.KeyMsg) (Model, tea.Cmd) {
	var cmd tea.Cmd
	for _, k := range ks {
		m, cmd = m.Update(k)
	}
	return m, cmd
}

func runes(s string) tea.KeyMsg { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)} }

var (
	enter = tea.KeyMsg{Type: tea.KeyEnter}
	down  = tea.KeyMsg{Type: tea.KeyDown}
	esc   = tea.KeyMsg{Type: tea.KeyEsc}
)

// TestRevokeConfirmationRequiresSerial: R opens the reason picker, enter
// picks one and asks for the serial; enter revokes only once the serial is
// typed exactly, and esc cancels without a request.
func TestRevokeConfirmationRequiresSerial(t *testing.T) {
	for _, tc := range []struct {
		name  string
		typed string
		sent  bool
	}{
		{"nothing typed", "", false},
		{"another serial", "GW-000043", false},
		{"a prefix", "GW-00004", false},
		{"lower case", "gw-000042", false},
		{"y is not enough", "y", false},
		{"the serial", "GW-000042", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := keys(loaded("GW-000042"), runes("R"), down, enter)
			if m.Mode() != ModeConfirmRevoke || Reasons[m.reason] != "keyCompromise" {
				t.Fatalf("mode %d reason %q; want the confirmation of keyCompromise", m.Mode(), Reasons[m.reason])
			}
			for _, r := range tc.typed {
				m, _ = m.Update(runes(string(r)))
			}
			m, cmd := m.Update(enter)
			if sent := cmd != nil && m.Busy(); sent != tc.sent {
				t.Errorf("typed %q: revoke sent %v; want %v", tc.typed, sent, tc.sent)
			}
			if !tc.sent && m.Mode() != ModeConfirmRevoke {
				t.Errorf("typed %q: mode %d; want still confirming", tc.typed, m.Mode())
			}
		})
	}
	m, cmd := keys(loaded("GW-000042"), runes("R"), enter, esc)
	if m.Mode() != ModeView || m.Busy() || cmd != nil {
		t.Errorf("esc: mode %d busy %v; want back to the page, nothing sent", m.Mode(), m.Busy())
	}
}

// TestConfirmationNamesSerial: the revoke and unclaim dialogs show the
// serial they act on.
func TestConfirmationNamesSerial(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys []tea.KeyMsg
		want string
	}{
		{"revoke", []tea.KeyMsg{runes("R"), enter}, "Type the serial GW-000042"},
		{"unclaim", []tea.KeyMsg{runes("U")}, "Unclaim GW-000042 from acme?"},
	} {
		m, _ := keys(loaded("GW-000042"), tc.keys...)
		if v := m.View(); !strings.Contains(v, tc.want) {
			t.Errorf("%s: view does not say %q:\n%s", tc.name, tc.want, v)
		}
	}
}

// TestUnclaimConfirm: U asks; n cancels, y unclaims.
func TestUnclaimConfirm(t *testing.T) {
	m, cmd := keys(loaded("GW-1"), runes("U"), runes("n"))
	if m.Mode() != ModeView || cmd != nil || m.Busy() {
		t.Errorf("U n: mode %d; want cancelled", m.Mode())
	}
	m, cmd = keys(loaded("GW-1"), runes("U"), runes("y"))
	if cmd == nil || !m.Busy() {
		t.Errorf("U y: nothing sent")
	}
}

// TestActionResultReloads: an action's outcome goes to the status line and
// the page is asked for again; a failure is one error line.
func TestActionResultReloads(t *testing.T) {
	m := loaded("GW-1")
	id := m.reqID
	m, cmd := m.Update(ActionMsg{Doing: "unlock GW-1", Status: "Unlocked GW-1 after 5 failed attempt(s)."})
	if m.Status() != "Unlocked GW-1 after 5 failed attempt(s)." || cmd == nil || m.reqID != id+1 {
		t.Errorf("status %q, request %d; want the line and a reload", m.Status(), m.reqID)
	}
	m, _ = m.Update(ActionMsg{Doing: "unlock GW-1", Err: errors.New("boom")})
	if m.Status() != "unlock GW-1: boom" {
		t.Errorf("status %q; want unlock GW-1: boom", m.Status())
	}
	// A stale page answer is dropped.
	m, _ = m.Update(DetailMsg{ID: id, Detail: gwclaim.DeviceDetail{Device: gwclaim.Device{Serial: "GW-stale"}}})
	if m.Detail().Device.Serial != "GW-1" {
		t.Errorf("stale answer shown: %s", m.Detail().Device.Serial)
	}
}
