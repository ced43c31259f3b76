// Package tui is gwpki's terminal UI (bubbletea v1): login, a home menu
// with the screens the user's role may use, and the installer's claim
// screen. It talks to the server only through its HTTP API
// (internal/apiclient); every request runs in a tea.Cmd.
package tui

import (
	"strings"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/gwpki/gwpki/internal/apiclient"
	"github.com/gwpki/gwpki/tui/common"
	"github.com/gwpki/gwpki/tui/pages/audit"
	"github.com/gwpki/gwpki/tui/pages/claim"
	"github.com/gwpki/gwpki/tui/pages/detail"
	"github.com/gwpki/gwpki/tui/pages/fleet"
	"github.com/gwpki/gwpki/tui/pages/home"
	"github.com/gwpki/gwpki/tui/pages/login"
)

// Options start the UI.
type Options struct {
	// Client is a valid saved session; with it the login screen is
	// skipped.
	Client *apiclient.Client
	// Login prefills the login screen.
	Login login.Defaults
	// Common overrides the size, styles, keys and clock (tests); zero
	// means common.New().
	Common *common.Common
}

// Model is the root model: it routes messages to the page shown and draws
// the help bar under it.
type Model struct {
	common   common.Common
	defaults login.Defaults
	page     common.Page
	login    login.Model
	home     home.Model
	claim    claim.Model
	fleet    fleet.Model
	detail   detail.Model
	audit    audit.Model
	help     help.Model
}

// New returns the UI's root model.
func New(o Options) Model {
	c := common.New()
	if o.Common != nil {
		c = *o.Common
	}
	m := Model{common: c, defaults: o.Login, help: help.New()}
	if o.Client != nil {
		m.loggedIn(o.Client)
	} else {
		m.page = common.PageLogin
		m.login = login.New(m.pageCommon(), o.Login)
	}
	return m
}

func (m *Model) loggedIn(c *apiclient.Client) {
	m.common.Client = c
	m.page = common.PageHome
	m.home = home.New(m.pageCommon())
	m.claim = claim.New(m.pageCommon())
	m.fleet = fleet.New(m.pageCommon())
}

// pageCommon is the Common of a page: the height without the title and
// help bar.
func (m Model) pageCommon() common.Common {
	c := m.common
	c.Height = max(1, c.Height-3)
	return c
}

// Page returns the page shown.
func (m Model) Page() common.Page { return m.page }

// Login, Home and Claim return the pages (for tests).
func (m Model) Login() login.Model   { return m.login }
func (m Model) Home() home.Model     { return m.home }
func (m Model) Claim() claim.Model   { return m.claim }
func (m Model) Fleet() fleet.Model   { return m.fleet }
func (m Model) Detail() detail.Model { return m.detail }
func (m Model) Audit() audit.Model   { return m.audit }

// Init implements tea.Model.
func (m Model) Init() tea.Cmd {
	if m.page == common.PageLogin {
		return m.login.Init()
	}
	return nil
}

// Update implements tea.Model.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.common.Width, m.common.Height = msg.Width, msg.Height
		m.help.Width = msg.Width
		pc := m.pageCommon()
		m.login.SetSize(pc.Width, pc.Height)
		if m.common.Client != nil {
			m.home.SetSize(pc.Width, pc.Height)
			m.claim.SetSize(pc.Width, pc.Height)
			m.fleet.SetSize(pc.Width, pc.Height)
			m.detail.SetSize(pc.Width, pc.Height)
			m.audit.SetSize(pc.Width, pc.Height)
		}
		return m, nil
	case tea.KeyMsg:
		if key.Matches(msg, m.common.KeyMap.Quit) {
			return m, tea.Quit
		}
	case common.LoggedInMsg:
		m.loggedIn(msg.Client)
		return m, nil
	case common.LoggedOutMsg:
		m.common.Client = nil
		m.page = common.PageLogin
		d := m.defaults
		d.Notice = "logged out"
		if msg.Err != nil {
			d.Notice = "logged out here (the server said: " + msg.Err.Error() + ")"
		}
		m.login = login.New(m.pageCommon(), d)
		return m, m.login.Init()
	case common.GoMsg:
		prev := m.page
		m.page = msg.Page
		switch msg.Page {
		case common.PageClaim:
			return m, m.claim.Init()
		case common.PageFleet:
			if prev == common.PageDetail {
				return m, m.fleet.Resume() // the same page, sort and filter
			}
			m.fleet = fleet.New(m.pageCommon())
			return m, m.fleet.Init()
		case common.PageDetail:
			m.detail = detail.New(m.pageCommon(), msg.Serial)
			return m, m.detail.Init()
		case common.PageAudit:
			m.audit = audit.New(m.pageCommon())
			return m, m.audit.Init()
		}
		return m, nil
	}
	var cmd tea.Cmd
	switch m.page {
	case common.PageLogin:
		m.login, cmd = m.login.Update(msg)
	case common.PageHome:
		m.home, cmd = m.home.Update(msg)
	case common.PageClaim:
		m.claim, cmd = m.claim.Update(msg)
	case common.PageFleet:
		m.fleet, cmd = m.fleet.Update(msg)
	case common.PageDetail:
		m.detail, cmd = m.detail.Update(msg)
	case common.PageAudit:
		m.audit, cmd = m.audit.Update(msg)
	}
	return m, cmd
}

// View implements tea.Model: the page, then the help bar at the bottom.
func (m Model) View() string {
	var body string
	var keys []key.Binding
	switch m.page {
	case common.PageLogin:
		body, keys = m.login.View(), m.login.ShortHelp()
	case common.PageHome:
		body, keys = m.home.View(), m.home.ShortHelp()
	case common.PageClaim:
		body, keys = m.claim.View(), m.claim.ShortHelp()
	case common.PageFleet:
		body, keys = m.fleet.View(), m.fleet.ShortHelp()
	case common.PageDetail:
		body, keys = m.detail.View(), m.detail.ShortHelp()
	case common.PageAudit:
		body, keys = m.audit.View(), m.audit.ShortHelp()
	}
	pc := m.pageCommon()
	body = lipgloss.NewStyle().MaxWidth(pc.Width).MaxHeight(pc.Height + 1).Render(body)
	lines := strings.Count(body, "\n") + 1
	pad := max(0, m.common.Height-1-lines)
	// help cuts with an ellipsis only when the ellipsis fits; cut again.
	bar := ansi.Truncate(m.help.ShortHelpView(keys), m.common.Width, "…")
	return body + strings.Repeat("\n", pad+1) + bar
}
