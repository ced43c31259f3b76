// Package audit is the audit view: the newest entries of the audit log
// (GET /v1/audit; an operator's organisation's, every entry for admins),
// paged toward older entries and filtered by action.
package audit

import (
	"context"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	gwaudit "github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/tui/common"
)

// PageMsg is the answer to the request ID.
type PageMsg struct {
	ID   int
	Page gwaudit.Page
	Err  error
}

// Model is the audit view.
type Model struct {
	common common.Common
	action string
	// befores is the stack of the Before of each page seen (0: the
	// newest); the last is the current page's.
	befores []uint64
	entries []gwaudit.Entry
	next    uint64
	reqID   int
	loading bool
	err     string

	filter    textinput.Model
	filtering bool
}

// New returns the audit view, not yet loaded (see Init).
func New(c common.Common) Model {
	f := textinput.New()
	f.Prompt = "action: "
	f.Placeholder = "claim, revoke, unclaim, login…"
	f.CharLimit = 64
	return Model{common: c, befores: []uint64{0}, filter: f}
}

// SetSize sets the screen's size.
func (m *Model) SetSize(width, height int) { m.common.Width, m.common.Height = width, height }

// Query returns the query of the current page.
func (m Model) Query() gwaudit.Query {
	return gwaudit.Query{Before: m.befores[len(m.befores)-1], Limit: m.limit(), Action: m.action}
}

// Entries returns the entries shown; Depth the pages on the stack.
func (m Model) Entries() []gwaudit.Entry { return m.entries }
func (m Model) Depth() int               { return len(m.befores) }
func (m Model) RequestID() int           { return m.reqID }

// limit: the title, the filter line, the header and the status line.
func (m Model) limit() int { return max(1, m.common.Height-4) }

// Init loads the newest entries.
func (m *Model) Init() tea.Cmd { return m.fetch() }

func (m *Model) fetch() tea.Cmd {
	m.reqID++
	m.loading = true
	id, q, c := m.reqID, m.Query(), m.common.Client
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), common.RequestTimeout)
		defer cancel()
		p, err := common.Audit(ctx, c, q)
		return PageMsg{ID: id, Page: p, Err: err}
	}
}

// ShortHelp returns the keys of the screen.
func (m Model) ShortHelp() []key.Binding {
	k := m.common.KeyMap
	if m.filtering {
		return []key.Binding{key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "apply")), key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel"))}
	}
	return []key.Binding{k.NextPage, k.PrevPage, key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "action")), k.Refresh, k.Back, k.Quit}
}

// Update handles keys and answers.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case PageMsg:
		if msg.ID != m.reqID {
			return m, nil
		}
		m.loading = false
		if msg.Err != nil {
			m.err = common.ErrorLine("read the audit log", msg.Err)
			return m, nil
		}
		m.err = ""
		m.entries, m.next = msg.Page.Entries, msg.Page.Next
		return m, nil
	case tea.KeyMsg:
		if m.filtering {
			switch msg.Type {
			case tea.KeyEnter:
				m.filtering = false
				m.filter.Blur()
				m.action = strings.TrimSpace(m.filter.Value())
				m.befores = []uint64{0}
				return m, m.fetch()
			case tea.KeyEsc:
				m.filtering = false
				m.filter.Blur()
				m.filter.SetValue(m.action)
				return m, nil
			}
			var cmd tea.Cmd
			m.filter, cmd = m.filter.Update(msg)
			return m, cmd
		}
		k := m.common.KeyMap
		switch {
		case key.Matches(msg, k.Back):
			return m, common.Go(common.PageHome)
		case key.Matches(msg, k.NextPage):
			if m.next != 0 && !m.loading {
				m.befores = append(m.befores, m.next)
				return m, m.fetch()
			}
		case key.Matches(msg, k.PrevPage):
			if len(m.befores) > 1 {
				m.befores = m.befores[:len(m.befores)-1]
				return m, m.fetch()
			}
		case key.Matches(msg, k.Refresh):
			return m, m.fetch()
		case key.Matches(msg, k.Filter):
			m.filtering = true
			return m, m.filter.Focus()
		}
	}
	return m, nil
}

func cell(s string, w int) string {
	s = ansi.Truncate(s, w, "…")
	return s + strings.Repeat(" ", max(0, w-ansi.StringWidth(s)))
}

// View renders the entries, newest first.
func (m Model) View() string {
	s := m.common.Styles
	var b strings.Builder
	b.WriteString(s.Title.Render(fmt.Sprintf("Audit log  page %d", len(m.befores))) + "\n")
	switch {
	case m.filtering:
		b.WriteString(m.filter.View() + "\n")
	case m.action != "":
		b.WriteString(s.Subtle.Render("action: "+m.action) + "\n")
	default:
		b.WriteString(s.Subtle.Render("every action; / to keep one") + "\n")
	}
	// time 16, action 9, result 7, actor 14; the target takes the rest.
	target := max(8, m.common.Width-16-9-7-14-4)
	b.WriteString(s.Subtle.Render(cell("TIME", 16)+" "+cell("ACTION", 9)+" "+cell("RESULT", 7)+" "+cell("ACTOR", 14)+" "+cell("TARGET", target)) + "\n")
	for _, e := range m.entries {
		result := cell(e.Result, 7)
		if e.Result != gwaudit.ResultOK {
			result = s.Warn.Render(result)
		}
		b.WriteString(cell(e.Time.UTC().Format("2006-01-02 15:04"), 16) + " " + cell(e.Action, 9) + " " + result + " " +
			cell(e.Actor, 14) + " " + cell(e.Target, target) + "\n")
	}
	if len(m.entries) == 0 && !m.loading && m.err == "" {
		b.WriteString(s.Subtle.Render("no entries") + "\n")
	}
	for range max(0, m.limit()-max(1, len(m.entries))) {
		b.WriteString("\n")
	}
	switch {
	case m.err != "":
		b.WriteString(s.Error.Render(m.err))
	case m.loading && len(m.entries) == 0:
		b.WriteString(s.Subtle.Render("loading…"))
	default:
		more := "the oldest entries"
		if m.next != 0 {
			more = "older: n"
		}
		b.WriteString(s.Subtle.Render(fmt.Sprintf("%d shown, newest first, %s", len(m.entries), more)))
	}
	return lipgloss.NewStyle().MaxWidth(m.common.Width).Render(b.String())
}
