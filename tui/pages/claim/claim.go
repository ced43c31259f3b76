// Package claim is the installer's claim screen: a serial and a code (or
// the label's QR payload pasted into either), the code checked as it is
// typed, and a result screen that says exactly what happened.
package claim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	gwclaim "github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/apiclient"
	"github.com/gwpki/gwpki/provisioning/label"
	"github.com/gwpki/gwpki/tui/common"
	"github.com/gwpki/gwpki/tui/components/codefield"
)

const (
	fieldSerial = iota
	fieldCode
)

// claimTimeout bounds one claim request.
const claimTimeout = 30 * time.Second

// ResultMsg is the answer to a claim: Answer on success, else Refusal when
// the server refused with a reason, else Err.
type ResultMsg struct {
	Serial  string
	Answer  *gwclaim.ClaimAnswer
	Refusal *gwclaim.ClaimRefusal
	Err     error
}

// Model is the claim screen and its result.
type Model struct {
	common common.Common
	serial textinput.Model
	code   codefield.Model
	focus  int
	err    string // a form error (empty serial, bad payload)
	busy   bool
	result *ResultMsg
}

// New returns an empty claim form.
func New(c common.Common) Model {
	m := Model{common: c, serial: textinput.New(), code: codefield.New(c)}
	m.serial.Prompt = ""
	m.serial.Placeholder = "GW-000042"
	m.serial.CharLimit = 200
	m.serial.Focus()
	m.SetSize(c.Width, c.Height)
	return m
}

// SetSize sets the screen's size.
func (m *Model) SetSize(width, height int) {
	m.common.Width, m.common.Height = width, height
	m.serial.Width = max(10, min(40, width-16))
	m.code.SetSize(width-16, height)
}

// Init implements tea.Model.
func (m Model) Init() tea.Cmd { return textinput.Blink }

// Serial and Code return what the form holds (the code grouped).
func (m Model) Serial() string { return m.serial.Value() }
func (m Model) Code() string   { return m.code.Value() }

// Result returns the result shown, nil while the form is shown.
func (m Model) Result() *ResultMsg { return m.result }

// ShortHelp returns the keys of the screen.
func (m Model) ShortHelp() []key.Binding {
	k := m.common.KeyMap
	if m.result != nil {
		return []key.Binding{k.NewClaim, withHelp(k.Back, "menu"), k.Quit}
	}
	return []key.Binding{k.Next, withHelp(k.Submit, "claim"), withHelp(k.Back, "menu"), k.Quit}
}

func withHelp(b key.Binding, desc string) key.Binding {
	b.SetHelp(b.Help().Key, desc)
	return b
}

// Update handles typing, the claim and its answer.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	k := m.common.KeyMap
	switch msg := msg.(type) {
	case ResultMsg:
		m.busy = false
		m.result = &msg
		return m, nil
	case tea.KeyMsg:
		if m.busy {
			return m, nil
		}
		if m.result != nil {
			switch {
			case key.Matches(msg, k.NewClaim):
				return m.fresh()
			case key.Matches(msg, k.Back):
				return m, common.Go(common.PageHome)
			}
			return m, nil
		}
		switch {
		case key.Matches(msg, k.Back):
			return m, common.Go(common.PageHome)
		case key.Matches(msg, k.Submit):
			if m.focus == fieldSerial {
				return m, m.setFocus(fieldCode)
			}
			return m.submit()
		case msg.Type == tea.KeyTab || msg.Type == tea.KeyShiftTab || msg.Type == tea.KeyUp || msg.Type == tea.KeyDown:
			return m, m.setFocus(1 - m.focus)
		}
	}
	if _, ok := msg.(tea.KeyMsg); ok {
		m.err = "" // a form error is about what was there before
	}
	var cmd tea.Cmd
	if m.focus == fieldSerial {
		m.serial, cmd = m.serial.Update(msg)
		m.takePayload(m.serial.Value())
	} else {
		m.code, cmd = m.code.Update(msg)
		if !m.takePayload(m.code.Raw()) {
			m.code.Regroup()
		}
	}
	return m, cmd
}

// takePayload fills serial and code from a label's QR payload pasted into
// a field, and reports whether the text was one.
func (m *Model) takePayload(s string) bool {
	if !strings.Contains(strings.ToUpper(s), "GWPKI") {
		return false
	}
	serial, code, err := label.ParsePayload(s)
	if errors.Is(err, label.ErrNotPayload) {
		return false
	}
	if err != nil {
		m.err = "that QR payload is not valid: " + err.Error()
		if m.focus == fieldSerial {
			m.serial.SetValue("")
		} else {
			m.code.SetValue("")
		}
		return true
	}
	m.err = ""
	m.serial.SetValue(serial)
	m.serial.CursorEnd()
	m.code.SetValue(code)
	m.setFocus(fieldCode)
	return true
}

func (m *Model) setFocus(i int) tea.Cmd {
	m.focus = i
	if i == fieldSerial {
		m.code.Blur()
		return m.serial.Focus()
	}
	m.serial.Blur()
	return m.code.Focus()
}

// fresh returns to the form after a result: empty after a claim, with the
// serial kept after a refusal so only the code needs typing again.
func (m Model) fresh() (Model, tea.Cmd) {
	keep := ""
	if m.result != nil && m.result.Answer == nil {
		keep = m.result.Serial
	}
	n := New(m.common)
	n.serial.SetValue(keep)
	n.serial.CursorEnd()
	if keep != "" {
		return n, tea.Batch(textinput.Blink, n.setFocus(fieldCode))
	}
	return n, textinput.Blink
}

// submit checks the form locally and starts the claim.
func (m Model) submit() (Model, tea.Cmd) {
	serial := strings.TrimSpace(m.serial.Value())
	if serial == "" {
		m.err = "enter the gateway's serial (on its label, or its console)"
		return m, m.setFocus(fieldSerial)
	}
	st := m.code.Status()
	if st.State != codefield.Valid {
		if st.State == codefield.Empty {
			m.err = "enter the code the gateway shows, or the one on its label"
		} else {
			m.err = st.Message
		}
		return m, nil
	}
	m.err, m.busy = "", true
	return m, claimCmd(m.common.Client, serial, st.Code.String())
}

// claimCmd posts the claim.
func claimCmd(c *apiclient.Client, serial, code string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
		defer cancel()
		var ans gwclaim.ClaimAnswer
		err := c.Do(ctx, http.MethodPost, "/v1/claims", gwclaim.ClaimBody{Serial: serial, Code: code}, &ans)
		if err == nil {
			return ResultMsg{Serial: serial, Answer: &ans}
		}
		var apiErr *apiclient.Error
		var r gwclaim.ClaimRefusal
		if errors.As(err, &apiErr) && json.Unmarshal(apiErr.Body, &r) == nil && r.Reason != "" {
			return ResultMsg{Serial: serial, Refusal: &r}
		}
		return ResultMsg{Serial: serial, Err: err}
	}
}

// Outcome says in words what a claim's answer means: a headline and what
// to do next.
func Outcome(r ResultMsg) (ok bool, headline, next string) {
	switch {
	case r.Answer != nil:
		return true, fmt.Sprintf("Claimed %s into organisation %s (with its %s code).", r.Answer.Device.Serial, r.Answer.Device.Org, r.Answer.Code),
			"It is your organisation's now; it learns so over its own connection and stops showing a code."
	case r.Refusal == nil:
		return false, common.ErrorLine("claim "+r.Serial, r.Err), ""
	}
	f := r.Refusal
	switch f.Reason {
	case "wrong_code":
		left := 0
		if f.AttemptsLeft != nil {
			left = *f.AttemptsLeft
		}
		return false, fmt.Sprintf("Wrong code for %s: %d attempts left before back-off.", r.Serial, left),
			"Use the code the gateway shows now (it changes every 5 minutes), or the one on its label."
	case "locked":
		return false, fmt.Sprintf("%s is locked after too many failed attempts.", r.Serial),
			"Ask an operator to unlock it (gwpki unlock " + r.Serial + "), or press the gateway's claim button, then try again."
	case "limited":
		scope := f.Scope
		if scope == "" {
			scope = "this"
		}
		return false, fmt.Sprintf("Too many failed attempts (%s limit): try again in %s.", scope, time.Duration(f.RetryAfter)*time.Second),
			"Nothing was counted for this try; wait, then claim again with the code the gateway shows then."
	case "already_claimed":
		if strings.Contains(f.Error, "your organisation") {
			return true, fmt.Sprintf("%s is already your organisation's.", r.Serial), "Nothing to do."
		}
		return false, fmt.Sprintf("%s is already claimed by another organisation.", r.Serial),
			"An operator of that organisation can unclaim it; then claim it with a fresh display code."
	case "code_used":
		return false, fmt.Sprintf("That code has been used already for %s.", r.Serial),
			"A label code claims only once: use the code the gateway's console shows now."
	}
	return false, fmt.Sprintf("Claim of %s refused: %s.", r.Serial, strings.TrimRight(f.Error, ".")), f.Hint
}

// View renders the form or the result.
func (m Model) View() string {
	s := m.common.Styles
	width := max(20, m.common.Width)
	var b strings.Builder
	if m.result != nil {
		b.WriteString(s.Title.Render("Claim result") + "\n\n")
		ok, headline, next := Outcome(*m.result)
		style := s.Error
		if ok {
			style = s.OK
		}
		b.WriteString(style.Width(width).Render(headline) + "\n")
		if next != "" {
			b.WriteString("\n" + lipgloss.NewStyle().Width(width).Render(next) + "\n")
		}
		return b.String()
	}
	b.WriteString(s.Title.Render("Claim a gateway") + "\n\n")
	labelStyle := func(i int, text string) string {
		if i == m.focus {
			return s.Label.Inherit(s.Focused).Render(text)
		}
		return s.Label.Render(text)
	}
	b.WriteString(labelStyle(fieldSerial, "Serial") + " " + m.serial.View() + "\n")
	b.WriteString(labelStyle(fieldCode, "Code") + " " + m.code.View() + "\n")
	st := m.code.Status()
	line := ""
	switch st.State {
	case codefield.Empty:
		line = s.Subtle.Render("XXXX-XXXX-C from the console, XXXX-XXXX-XXXX-XXXX-C from the label, or paste GWPKI1:…")
	case codefield.Incomplete:
		line = s.Subtle.Render(st.Message)
	case codefield.Valid:
		line = s.OK.Render("✓ " + st.Message)
	default:
		line = s.Error.Render("✗ " + st.Message)
	}
	b.WriteString(lipgloss.NewStyle().PaddingLeft(13).Width(width).Render(line) + "\n\n")
	switch {
	case m.busy:
		b.WriteString(s.Subtle.Render("claiming…"))
	case m.err != "":
		b.WriteString(s.Error.Width(width).Render(m.err))
	}
	return b.String()
}
