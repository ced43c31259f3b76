package claim

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	gwclaim "github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/provisioning/label"
	"github.com/gwpki/gwpki/tui/common"
)

func typeText(m Model, s string) Model {
	for _, r := range s {
		m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
	return m
}

func paste(m Model, s string) Model {
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s), Paste: true})
	return m
}

// TestTUIClaimFormTyping: the code is grouped as typed, a typo is shown
// and Enter does not send it.
func TestTUIClaimFormTyping(t *testing.T) {
	code := gwclaim.FormatDisplay([]byte{1, 2, 3, 4, 5})
	typo := code[:len(code)-1] + "0"
	if typo == code {
		typo = code[:len(code)-1] + "1"
	}
	m := New(common.New())
	m = typeText(m, "GW-1")
	m, _ = m.Update(tea.KeyMsg{Type: tea.KeyTab})
	m = typeText(m, strings.ToLower(strings.ReplaceAll(typo, "-", "")))
	if m.Code() != typo {
		t.Errorf("code = %q; want %q", m.Code(), typo)
	}
	view := ansi.Strip(m.View())
	if !strings.Contains(view, typo) || !strings.Contains(view, "typo: the last symbol (the check) does not match") {
		t.Errorf("view does not show the grouped code and the typo:\n%s", view)
	}
	m, cmd := m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	if cmd != nil || m.busy {
		t.Error("enter with a typo started a claim; want nothing sent")
	}
}

// TestTUIClaimPastePayload: the label's QR payload pasted into either field
// fills both.
func TestTUIClaimPastePayload(t *testing.T) {
	code := gwclaim.FormatLabel([]byte{9, 8, 7, 6, 5, 4, 3, 2, 1, 0})
	payload, err := label.Payload("GW-000007", code)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []int{fieldSerial, fieldCode} {
		m := New(common.New())
		if field == fieldCode {
			m, _ = m.Update(tea.KeyMsg{Type: tea.KeyTab})
		}
		m = paste(m, payload+"\n")
		if m.Serial() != "GW-000007" || m.Code() != code {
			t.Errorf("field %d: serial %q code %q; want GW-000007 %q", field, m.Serial(), m.Code(), code)
		}
		if m.code.Status().State != 2 { // Valid
			t.Errorf("field %d: code status %+v", field, m.code.Status())
		}
	}
	m := paste(New(common.New()), "GWPKI1:GW-1:0000")
	if !strings.Contains(m.err, "QR payload is not valid") {
		t.Errorf("bad payload: err = %q", m.err)
	}
}

// TestTUIClaimResults: each answer gives the result screen that says what
// happened.
func TestTUIClaimResults(t *testing.T) {
	left := 3
	for _, tc := range []struct {
		name string
		msg  ResultMsg
		want []string
	}{
		{"claimed", ResultMsg{Serial: "GW-1", Answer: &gwclaim.ClaimAnswer{Device: gwclaim.Device{Serial: "GW-1", Org: "acme"}, Code: "label"}},
			[]string{"Claimed GW-1 into organisation acme (with its label code)."}},
		{"wrong code", ResultMsg{Serial: "GW-1", Refusal: &gwclaim.ClaimRefusal{Reason: "wrong_code", AttemptsLeft: &left}},
			[]string{"Wrong code for GW-1: 3 attempts left before back-off."}},
		{"locked", ResultMsg{Serial: "GW-1", Refusal: &gwclaim.ClaimRefusal{Reason: "locked", Scope: "gateway"}},
			[]string{"GW-1 is locked", "Ask an operator to unlock it", "press the gateway's claim button"}},
		{"limited", ResultMsg{Serial: "GW-1", Refusal: &gwclaim.ClaimRefusal{Reason: "limited", Scope: "gateway", RetryAfter: 120}},
			[]string{"(gateway limit): try again in 2m0s."}},
		{"already yours", ResultMsg{Serial: "GW-1", Refusal: &gwclaim.ClaimRefusal{Reason: "already_claimed", Error: "gateway already claimed by your organisation"}},
			[]string{"GW-1 is already your organisation's."}},
		{"already others'", ResultMsg{Serial: "GW-1", Refusal: &gwclaim.ClaimRefusal{Reason: "already_claimed", Error: "gateway already claimed"}},
			[]string{"already claimed by another organisation"}},
		{"code used", ResultMsg{Serial: "GW-1", Refusal: &gwclaim.ClaimRefusal{Reason: "code_used"}},
			[]string{"That code has been used already for GW-1.", "label code claims only once"}},
		{"invalid serial", ResultMsg{Serial: "G W", Refusal: &gwclaim.ClaimRefusal{Reason: "invalid_serial", Error: "invalid serial", Hint: "a serial is 1 to 64"}},
			[]string{"Claim of G W refused: invalid serial.", "a serial is 1 to 64"}},
		{"unreachable", ResultMsg{Serial: "GW-1", Err: errors.Join(errors.New("reach"), syscall.ECONNREFUSED)},
			[]string{"is gwpki serve running there?"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(common.New())
			m.busy = true
			m, _ = m.Update(tc.msg)
			if m.Result() == nil || m.busy {
				t.Fatal("no result screen")
			}
			view := strings.Join(strings.Fields(ansi.Strip(m.View())), " ")
			for _, w := range tc.want {
				if !strings.Contains(view, w) {
					t.Errorf("view lacks %q:\n%s", w, view)
				}
			}
			// Enter goes back to a fresh claim; after a refusal the
			// serial stays.
			m, _ = m.Update(tea.KeyMsg{Type: tea.KeyEnter})
			if m.Result() != nil || m.Code() != "" {
				t.Errorf("after enter: result %v code %q; want a fresh form", m.Result(), m.Code())
			}
			if wantSerial := map[bool]string{true: "", false: tc.msg.Serial}[tc.msg.Answer != nil]; m.Serial() != wantSerial {
				t.Errorf("after enter: serial %q; want %q", m.Serial(), wantSerial)
			}
		})
	}
}
