// Package detail is a gateway's detail page: the device, the state of its
// claim attempt limit (a lock, a back-off, failed attempts), its
// certificates with their status, its claim history, its latest telemetry
// with a sparkline of one metric, and the operator's actions on it: revoke
// (a reason, then a confirmation naming the serial), unclaim (confirmed)
// and unlock.
package detail

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	gwclaim "github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/tui/common"
	"github.com/gwpki/gwpki/tui/components/sparkline"
	"github.com/gwpki/gwpki/tui/pages/fleet"
)

// Reasons are the revocation reasons of the picker (RFC 5280 names).
var Reasons = []string{"unspecified", "keyCompromise", "superseded", "cessationOfOperation", "affiliationChanged", "privilegeWithdrawn"}

// Mode is what the page is asking for.
type Mode int

const (
	ModeView           Mode = iota
	ModeReason              // picking a revocation reason
	ModeConfirmRevoke       // typing the serial to confirm the revocation
	ModeConfirmUnclaim      // y/n
)

// DetailMsg is the answer to the request ID.
type DetailMsg struct {
	ID     int
	Detail gwclaim.DeviceDetail
	Err    error
}

// ActionMsg is the outcome of an action, one line for the status line.
type ActionMsg struct {
	Doing, Status string
	Err           error
}

// Model is the detail page of one gateway.
type Model struct {
	common  common.Common
	serial  string
	detail  *gwclaim.DeviceDetail
	reqID   int
	loading bool
	err     string
	status  string // the last action's outcome
	statErr bool
	busy    bool

	mode    Mode
	reason  int
	confirm textinput.Model
}

// New returns the detail page of serial, not yet loaded (see Init).
func New(c common.Common, serial string) Model {
	in := textinput.New()
	in.Prompt = "> "
	in.CharLimit = 64
	return Model{common: c, serial: serial, confirm: in}
}

// SetSize sets the screen's size.
func (m *Model) SetSize(width, height int) { m.common.Width, m.common.Height = width, height }

// Serial, Mode, Status and Detail expose the page's state (for tests).
func (m Model) Serial() string                { return m.serial }
func (m Model) Mode() Mode                    { return m.mode }
func (m Model) Status() string                { return m.status }
func (m Model) Detail() *gwclaim.DeviceDetail { return m.detail }
func (m Model) Busy() bool                    { return m.busy }

// Init loads the page.
func (m *Model) Init() tea.Cmd { return m.fetch() }

func (m *Model) fetch() tea.Cmd {
	m.reqID++
	m.loading = true
	id, serial, c := m.reqID, m.serial, m.common.Client
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), common.RequestTimeout)
		defer cancel()
		d, err := common.Detail(ctx, c, serial)
		return DetailMsg{ID: id, Detail: d, Err: err}
	}
}

// action runs do in a command and reports its line.
func (m *Model) action(doing string, do func(ctx context.Context) (string, error)) tea.Cmd {
	m.busy = true
	m.status, m.statErr = "working…", false
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), common.RequestTimeout)
		defer cancel()
		s, err := do(ctx)
		return ActionMsg{Doing: doing, Status: s, Err: err}
	}
}

func (m *Model) revoke(reason string) tea.Cmd {
	c, serial := m.common.Client, m.serial
	return m.action("revoke "+serial, func(ctx context.Context) (string, error) {
		r, err := common.Revoke(ctx, c, serial, reason)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("Revoked %d certificate(s) of %s (%s); %d already revoked.", len(r.Revoked), serial, reason, r.AlreadyRevoked), nil
	})
}

func (m *Model) unclaim() tea.Cmd {
	c, serial := m.common.Client, m.serial
	return m.action("unclaim "+serial, func(ctx context.Context) (string, error) {
		a, err := common.Unclaim(ctx, c, serial)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("Unclaimed %s; %d operational certificate(s) revoked.", serial, len(a.Revoked)), nil
	})
}

func (m *Model) unlock() tea.Cmd {
	c, serial := m.common.Client, m.serial
	return m.action("unlock "+serial, func(ctx context.Context) (string, error) {
		r, err := common.Unlock(ctx, c, serial)
		if err != nil {
			return "", err
		}
		if !r.WasLocked {
			return fmt.Sprintf("%s was not locked; %d failed attempt(s) cleared.", serial, r.Failures), nil
		}
		return fmt.Sprintf("Unlocked %s after %d failed attempt(s).", serial, r.Failures), nil
	})
}

// ShortHelp returns the keys of the screen.
func (m Model) ShortHelp() []key.Binding {
	k := m.common.KeyMap
	switch m.mode {
	case ModeReason:
		return []key.Binding{k.Up, k.Down, key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "choose")), key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel"))}
	case ModeConfirmRevoke:
		return []key.Binding{key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "revoke")), key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel"))}
	case ModeConfirmUnclaim:
		return []key.Binding{k.Confirm, key.NewBinding(key.WithKeys("n", "esc"), key.WithHelp("n/esc", "cancel"))}
	}
	return []key.Binding{k.Revoke, k.Unclaim, k.Unlock, k.Refresh, k.Back, k.Quit}
}

// Update handles keys, the page's answer and the actions' outcomes.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case DetailMsg:
		if msg.ID != m.reqID {
			return m, nil
		}
		m.loading = false
		if msg.Err != nil {
			m.err = common.ErrorLine("load "+m.serial, msg.Err)
			return m, nil
		}
		m.err = ""
		d := msg.Detail
		m.detail = &d
		return m, nil
	case ActionMsg:
		m.busy = false
		if msg.Err != nil {
			m.status, m.statErr = common.ErrorLine(msg.Doing, msg.Err), true
		} else {
			m.status, m.statErr = msg.Status, false
		}
		return m, m.fetch() // show what changed
	case tea.KeyMsg:
		switch m.mode {
		case ModeReason:
			return m.updateReason(msg)
		case ModeConfirmRevoke:
			return m.updateConfirmRevoke(msg)
		case ModeConfirmUnclaim:
			switch msg.String() {
			case "y", "Y":
				m.mode = ModeView
				return m, m.unclaim()
			case "n", "N", "esc":
				m.mode = ModeView
			}
			return m, nil
		}
		k := m.common.KeyMap
		switch {
		case key.Matches(msg, k.Back):
			return m, common.Go(common.PageFleet)
		case key.Matches(msg, k.Refresh):
			return m, m.fetch()
		case m.busy:
			return m, nil // one action at a time
		case key.Matches(msg, k.Revoke):
			m.mode, m.reason = ModeReason, 0
		case key.Matches(msg, k.Unclaim):
			m.mode = ModeConfirmUnclaim
		case key.Matches(msg, k.Unlock):
			return m, m.unlock()
		}
	}
	return m, nil
}

func (m Model) updateReason(msg tea.KeyMsg) (Model, tea.Cmd) {
	k := m.common.KeyMap
	switch {
	case key.Matches(msg, k.Back):
		m.mode = ModeView
	case key.Matches(msg, k.Up):
		m.reason = max(0, m.reason-1)
	case key.Matches(msg, k.Down):
		m.reason = min(len(Reasons)-1, m.reason+1)
	case msg.Type == tea.KeyEnter:
		m.mode = ModeConfirmRevoke
		m.confirm.SetValue("")
		m.confirm.Placeholder = m.serial
		return m, m.confirm.Focus()
	}
	return m, nil
}

// updateConfirmRevoke revokes only once the serial is typed exactly.
func (m Model) updateConfirmRevoke(msg tea.KeyMsg) (Model, tea.Cmd) {
	switch msg.Type {
	case tea.KeyEsc:
		m.mode = ModeView
		m.confirm.Blur()
		return m, nil
	case tea.KeyEnter:
		if strings.TrimSpace(m.confirm.Value()) != m.serial {
			return m, nil
		}
		m.mode = ModeView
		m.confirm.Blur()
		return m, m.revoke(Reasons[m.reason])
	}
	var cmd tea.Cmd
	m.confirm, cmd = m.confirm.Update(msg)
	return m, cmd
}

// View renders the page.
func (m Model) View() string {
	s := m.common.Styles
	w := m.common.Width
	var b strings.Builder
	line := func(text string) { b.WriteString(ansi.Truncate(text, w, "…") + "\n") }
	if m.detail == nil {
		line(s.Title.Render(m.serial))
		switch {
		case m.err != "":
			line(s.Error.Render(m.err))
		default:
			line(s.Subtle.Render("loading…"))
		}
		return b.String()
	}
	now := m.common.Now()
	d := m.detail.Device
	online := "offline"
	if d.Online {
		online = s.OK.Render("online")
	}
	org := d.Org
	if org == "" {
		org = "no organisation"
	}
	line(s.Title.Render(d.Serial) + "  " + d.Model + " · " + org + " · " + d.State + " · " + online + " · last seen " + fleet.Ago(now, d.LastSeen))
	reg := fmt.Sprintf("registered %s by %s", d.RegisteredAt.UTC().Format("2006-01-02"), d.Station)
	if !d.ClaimedAt.IsZero() {
		reg += fmt.Sprintf(" · claimed %s by %s", d.ClaimedAt.UTC().Format("2006-01-02 15:04"), d.ClaimedBy)
	}
	line(s.Subtle.Render(reg))
	if text, warn := claimLockLine(now, d); text != "" {
		if warn {
			line(s.Warn.Render(text))
		} else {
			line(s.Subtle.Render(text))
		}
	}
	line("")
	switch m.mode {
	case ModeReason:
		line(s.Warn.Render("Revoke every certificate of " + m.serial + ": why?"))
		for i, r := range Reasons {
			if i == m.reason {
				line(s.Focused.Render("> " + r))
			} else {
				line("  " + r)
			}
		}
		return b.String()
	case ModeConfirmRevoke:
		line(s.Warn.Render(fmt.Sprintf("Revoke every certificate of %s (%s)? It cannot be undone.", m.serial, Reasons[m.reason])))
		line("Type the serial " + s.Title.Render(m.serial) + " and press enter to revoke; esc cancels.")
		line(m.confirm.View())
		return b.String()
	case ModeConfirmUnclaim:
		line(s.Warn.Render("Unclaim " + m.serial + " from " + org + "? Its operational certificates are revoked."))
		line("y: unclaim " + m.serial + " · n/esc: cancel")
		return b.String()
	}
	line(s.Label.Render("Certificates"))
	if len(m.detail.Certificates) == 0 {
		line(s.Subtle.Render("  none"))
	}
	for i, c := range m.detail.Certificates {
		if i == 3 {
			line(s.Subtle.Render(fmt.Sprintf("  … %d more", len(m.detail.Certificates)-3)))
			break
		}
		status := c.Status
		switch c.Status {
		case gwclaim.CertStatusGood:
			status = s.OK.Render(status)
		case gwclaim.CertStatusRevoked:
			status = s.Error.Render(status + " (" + c.RevocationReason + ")")
		default:
			status = s.Warn.Render(status)
		}
		line(fmt.Sprintf("  %-11s %-16s until %s  %s", c.Kind, ansi.Truncate(c.Serial, 16, "…"), c.NotAfter.UTC().Format("2006-01-02"), status))
	}
	line(s.Label.Render("History"))
	if len(m.detail.History) == 0 {
		line(s.Subtle.Render("  none"))
	}
	for i, e := range m.detail.History {
		if i == 3 {
			line(s.Subtle.Render(fmt.Sprintf("  … %d more (audit view)", len(m.detail.History)-3)))
			break
		}
		line(fmt.Sprintf("  %s  %-8s %-7s %s", e.Time.UTC().Format("2006-01-02 15:04"), e.Action, e.Result, e.Actor))
	}
	line(s.Label.Render("Telemetry"))
	t := m.detail.Telemetry
	if t.Latest == nil {
		line(s.Subtle.Render("  no message stored"))
	} else {
		line(fmt.Sprintf("  %s  %s (%s)", t.Latest.Time.UTC().Format("15:04:05"), t.Latest.Topic, fleet.Ago(now, t.Latest.Time)))
		payload := string(t.Latest.Payload)
		if payload == "" {
			payload = "(binary, " + fmt.Sprint(len(t.Latest.PayloadBase64)) + " base64 characters)"
		}
		line("  " + payload)
	}
	if len(t.Series) > 0 {
		vals := make([]float64, len(t.Series))
		lo, hi := t.Series[0].Value, t.Series[0].Value
		for i, p := range t.Series {
			vals[i] = p.Value
			lo, hi = min(lo, p.Value), max(hi, p.Value)
		}
		label := fmt.Sprintf("  %s ", t.Metric)
		tail := fmt.Sprintf(" %g (%g–%g)", vals[len(vals)-1], lo, hi)
		width := max(4, w-ansi.StringWidth(label)-ansi.StringWidth(tail))
		line(label + s.Focused.Render(sparkline.Render(vals, width)) + tail)
	} else {
		line(s.Subtle.Render("  no values of " + t.Metric))
	}
	line("")
	switch {
	case m.statErr:
		line(s.Error.Render(m.status))
	case m.status != "":
		line(s.OK.Render(m.status))
	}
	if m.err != "" {
		line(s.Error.Render(m.err))
	}
	return lipgloss.NewStyle().MaxWidth(w).Render(strings.TrimSuffix(b.String(), "\n"))
}

// claimLockLine describes the gateway's claim attempt limit beside the
// unlock action, and says whether it is a warning (a lock or a back-off);
// "" when no claim failed since the last claim or unlock.
func claimLockLine(now time.Time, d gwclaim.Device) (string, bool) {
	last := ""
	if !d.ClaimLastFailure.IsZero() {
		last = d.ClaimLastFailure.UTC().Format("2006-01-02 15:04") + " (" + fleet.Ago(now, d.ClaimLastFailure) + ")"
	}
	switch {
	case d.ClaimLock == gwclaim.ClaimLockLocked:
		text := "Claims locked"
		if last != "" {
			text += " since " + last
		}
		return text + fmt.Sprintf(" after %d failures · L unlocks", d.ClaimFailures), true
	case d.ClaimLock == gwclaim.ClaimLockBackoff:
		return fmt.Sprintf("Claims back off until %s (%s) after %d failures · L unlocks",
			d.ClaimRetryAfter.UTC().Format("15:04:05"), in(now, d.ClaimRetryAfter), d.ClaimFailures), true
	case d.ClaimFailures > 0:
		text := fmt.Sprintf("%d failed claim attempt(s)", d.ClaimFailures)
		if last != "" {
			text += ", the last " + last
		}
		return text, false
	}
	return "", false
}

// in says how long until t, shortly: "in 50s", "in 3m", "in 2h"; "now"
// once it has passed.
func in(now, t time.Time) string {
	d := t.Sub(now)
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("in %ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("in %dm", int(d/time.Minute))
	}
	return fmt.Sprintf("in %dh", int(d/time.Hour))
}
