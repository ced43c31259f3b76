// Package home is the menu after login: who is logged in, in which
// organisation and with which role, and the screens that role may use.
package home

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/gwpki/gwpki/tui/common"
)

// Item is one entry of the menu.
type Item struct {
	Title, Desc string
	Page        common.Page
}

var (
	itemClaim = Item{Title: "Claim a gateway", Desc: "serial and the code it shows, or its label's QR payload", Page: common.PageClaim}
	itemAudit = Item{Title: "Audit log", Desc: "the newest entries, by action", Page: common.PageAudit}
	itemFleet = Item{Title: "Fleet", Desc: "the gateways, their state and certificates; revoke, unclaim, unlock", Page: common.PageFleet}
)

// ItemsFor returns the screens role may use. Only screens that exist are
// listed.
func ItemsFor(role string) []Item {
	switch role {
	case "installer":
		return []Item{itemClaim}
	case "operator":
		return []Item{itemClaim, itemFleet, itemAudit}
	case "admin":
		return []Item{itemFleet, itemAudit}
	}
	return nil
}

// Model is the home screen.
type Model struct {
	common common.Common
	items  []Item
	cursor int
	err    string
}

// New returns the home screen of c's session.
func New(c common.Common) Model {
	return Model{common: c, items: ItemsFor(c.Client.Session().Role)}
}

// SetSize sets the screen's size.
func (m *Model) SetSize(width, height int) { m.common.Width, m.common.Height = width, height }

// Init implements tea.Model.
func (m Model) Init() tea.Cmd { return nil }

// ShortHelp returns the keys of the screen.
func (m Model) ShortHelp() []key.Binding {
	k := m.common.KeyMap
	if len(m.items) == 0 {
		return []key.Binding{k.Logout, k.Quit}
	}
	return []key.Binding{k.Up, k.Down, k.Select, k.Logout, k.Quit}
}

type logoutMsg struct{ err error }

// Update moves the cursor, opens a screen, logs out.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case logoutMsg:
		return m, func() tea.Msg { return common.LoggedOutMsg{Err: msg.err} }
	case tea.KeyMsg:
		k := m.common.KeyMap
		switch {
		case key.Matches(msg, k.Up):
			m.cursor = max(0, m.cursor-1)
		case key.Matches(msg, k.Down):
			m.cursor = min(max(0, len(m.items)-1), m.cursor+1)
		case key.Matches(msg, k.Select):
			if len(m.items) > 0 {
				return m, common.Go(m.items[m.cursor].Page)
			}
		case key.Matches(msg, k.Logout):
			c := m.common.Client
			return m, func() tea.Msg {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				return logoutMsg{err: c.Logout(ctx)}
			}
		}
	}
	return m, nil
}

// View renders the user and the menu.
func (m Model) View() string {
	s := m.common.Styles
	sess := m.common.Client.Session()
	var b strings.Builder
	b.WriteString(s.Title.Render("gwpki") + "\n\n")
	fmt.Fprintf(&b, "%s %s\n", s.Label.Render("User"), sess.Username)
	fmt.Fprintf(&b, "%s %s\n", s.Label.Render("Organisation"), sess.Org)
	fmt.Fprintf(&b, "%s %s\n", s.Label.Render("Role"), sess.Role)
	fmt.Fprintf(&b, "%s %s\n\n", s.Label.Render("Server"), sess.Server)
	if len(m.items) == 0 {
		b.WriteString(s.Subtle.Render("There is no screen for the " + sess.Role + " role yet; use the gwpki command line."))
	}
	for i, it := range m.items {
		line := "  " + it.Title
		if i == m.cursor {
			line = s.Focused.Render("> " + it.Title)
		}
		b.WriteString(line + "\n")
		b.WriteString(s.Subtle.Render("    "+it.Desc) + "\n")
	}
	return lipgloss.NewStyle().MaxWidth(m.common.Width).Render(b.String())
}
