// Package login is the login screen: server URL, root CA, username and a
// masked password. Enter logs in through apiclient.Login in a command.
package login

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"

	"github.com/gwpki/gwpki/internal/apiclient"
	"github.com/gwpki/gwpki/tui/common"
)

// Defaults prefilled in the fields.
type Defaults struct {
	Server   string
	RootPath string
	// RootPEM is the saved session's pinned root, used when RootPath is
	// left empty.
	RootPEM  []byte
	Username string
	// Notice is shown above the form (such as "the session expired").
	Notice string
}

const (
	fieldServer = iota
	fieldRoot
	fieldUser
	fieldPassword
	fieldCount
)

var labels = [fieldCount]string{"Server", "Root CA", "Username", "Password"}

// loginTimeout bounds one login attempt.
const loginTimeout = 30 * time.Second

// resultMsg is the answer to a login attempt.
type resultMsg struct {
	client *apiclient.Client
	err    string
}

// Model is the login screen.
type Model struct {
	common  common.Common
	inputs  [fieldCount]textinput.Model
	focus   int
	rootPEM []byte
	notice  string
	err     string
	busy    bool
}

// New returns the login screen with d prefilled; the cursor starts at the
// first empty field.
func New(c common.Common, d Defaults) Model {
	m := Model{common: c, rootPEM: d.RootPEM, notice: d.Notice}
	for i := range m.inputs {
		in := textinput.New()
		in.Prompt = ""
		in.CharLimit = 1024
		m.inputs[i] = in
	}
	m.inputs[fieldServer].SetValue(d.Server)
	m.inputs[fieldServer].Placeholder = "https://localhost:8443"
	m.inputs[fieldRoot].SetValue(d.RootPath)
	m.inputs[fieldRoot].Placeholder = "root_ca.crt"
	if d.RootPath == "" && len(d.RootPEM) > 0 {
		m.inputs[fieldRoot].Placeholder = "(the saved session's root)"
	}
	m.inputs[fieldUser].SetValue(d.Username)
	m.inputs[fieldPassword].EchoMode = textinput.EchoPassword
	m.inputs[fieldPassword].EchoCharacter = '•'
	m.focus = fieldPassword
	for i := fieldCount - 1; i >= 0; i-- {
		if m.inputs[i].Value() == "" && !(i == fieldRoot && len(d.RootPEM) > 0) {
			m.focus = i
		}
	}
	m.inputs[m.focus].Focus()
	m.SetSize(c.Width, c.Height)
	return m
}

// SetSize sets the screen's size.
func (m *Model) SetSize(width, height int) {
	m.common.Width, m.common.Height = width, height
	for i := range m.inputs {
		m.inputs[i].Width = max(10, width-16)
	}
}

// Init implements tea.Model.
func (m Model) Init() tea.Cmd { return textinput.Blink }

// Err returns the error line shown, "" when none.
func (m Model) Err() string { return m.err }

// ShortHelp returns the keys of the screen.
func (m Model) ShortHelp() []key.Binding {
	k := m.common.KeyMap
	return []key.Binding{k.Next, k.Prev, withHelp(k.Submit, "log in"), k.Quit}
}

func withHelp(b key.Binding, desc string) key.Binding {
	b.SetHelp(b.Help().Key, desc)
	return b
}

// Update handles keys and the login's answer.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case resultMsg:
		m.busy = false
		if msg.err != "" {
			m.err = msg.err
			m.inputs[fieldPassword].SetValue("")
			return m, m.setFocus(fieldPassword)
		}
		m.err = ""
		client := msg.client
		return m, func() tea.Msg { return common.LoggedInMsg{Client: client} }
	case tea.KeyMsg:
		if m.busy {
			return m, nil
		}
		km := m.common.KeyMap
		switch {
		case key.Matches(msg, km.Submit):
			if m.focus != fieldPassword {
				return m, m.setFocus(m.focus + 1)
			}
			return m.submit()
		case key.Matches(msg, km.Next):
			return m, m.setFocus((m.focus + 1) % fieldCount)
		case key.Matches(msg, km.Prev):
			return m, m.setFocus((m.focus + fieldCount - 1) % fieldCount)
		}
	}
	var cmd tea.Cmd
	m.inputs[m.focus], cmd = m.inputs[m.focus].Update(msg)
	return m, cmd
}

func (m *Model) setFocus(i int) tea.Cmd {
	m.inputs[m.focus].Blur()
	m.focus = i
	return m.inputs[i].Focus()
}

// submit checks the form and starts the login command.
func (m Model) submit() (Model, tea.Cmd) {
	server := strings.TrimSpace(m.inputs[fieldServer].Value())
	rootPath := strings.TrimSpace(m.inputs[fieldRoot].Value())
	user := strings.TrimSpace(m.inputs[fieldUser].Value())
	password := m.inputs[fieldPassword].Value()
	switch {
	case server == "":
		m.err = "enter the server URL (https://host:8443)"
		return m, m.setFocus(fieldServer)
	case rootPath == "" && len(m.rootPEM) == 0:
		m.err = "enter the root CA path (certs/root_ca.crt in the server's data directory)"
		return m, m.setFocus(fieldRoot)
	case user == "":
		m.err = "enter your username"
		return m, m.setFocus(fieldUser)
	case password == "":
		m.err = "enter your password"
		return m, nil
	}
	m.err, m.busy = "", true
	return m, loginCmd(server, rootPath, m.rootPEM, user, password)
}

// loginCmd reads the root and logs in.
func loginCmd(server, rootPath string, savedRoot []byte, user, password string) tea.Cmd {
	return func() tea.Msg {
		rootPEM := savedRoot
		if rootPath != "" {
			var err error
			if rootPEM, err = os.ReadFile(rootPath); err != nil {
				return resultMsg{err: fmt.Sprintf("read root CA: %v", err)}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), loginTimeout)
		defer cancel()
		c, err := apiclient.Login(ctx, server, rootPEM, user, password)
		if err != nil {
			return resultMsg{err: common.ErrorLine("log in", err)}
		}
		return resultMsg{client: c}
	}
}

// View renders the form.
func (m Model) View() string {
	s := m.common.Styles
	var b strings.Builder
	b.WriteString(s.Title.Render("Log in") + "\n\n")
	if m.notice != "" {
		b.WriteString(s.Warn.Render(m.notice) + "\n\n")
	}
	for i, in := range m.inputs {
		label := s.Label.Render(labels[i])
		if i == m.focus {
			label = s.Label.Inherit(s.Focused).Render(labels[i])
		}
		b.WriteString(label + " " + in.View() + "\n")
	}
	b.WriteString("\n")
	switch {
	case m.busy:
		b.WriteString(s.Subtle.Render("logging in…"))
	case m.err != "":
		b.WriteString(s.Error.Width(max(20, m.common.Width)).Render(m.err))
	}
	return lipgloss.NewStyle().MaxWidth(m.common.Width).Render(b.String())
}
