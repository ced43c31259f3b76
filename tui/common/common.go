// Package common holds what every screen of the terminal UI shares: the
// window size, the styles, the key map, the API client and the messages the
// screens send to the root model.
package common

import (
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/gwpki/gwpki/internal/apiclient"
)

// Common is handed to every page and component.
type Common struct {
	Width, Height int
	Styles        *Styles
	KeyMap        *KeyMap
	// Client is the logged-in API client; nil before login.
	Client *apiclient.Client
	// Now is the clock (injected in tests).
	Now func() time.Time
}

// New returns a Common with the default styles and keys and the wall clock.
func New() Common {
	return Common{Width: 80, Height: 24, Styles: DefaultStyles(), KeyMap: DefaultKeyMap(), Now: time.Now}
}

// LoggedInMsg says a login succeeded (or a saved session was loaded).
type LoggedInMsg struct{ Client *apiclient.Client }

// LoggedOutMsg says the session ended; the root shows the login screen.
type LoggedOutMsg struct{ Err error }

// Page names a screen the root model can show.
type Page int

const (
	PageLogin Page = iota
	PageHome
	PageClaim
	PageFleet
	PageDetail
	PageAudit
)

// GoMsg asks the root model to show a page; Serial names the gateway of
// PageDetail.
type GoMsg struct {
	Page   Page
	Serial string
}

// Go returns a command that sends GoMsg{p}.
func Go(p Page) tea.Cmd { return func() tea.Msg { return GoMsg{Page: p} } }

// GoDetail returns a command that opens the detail page of serial.
func GoDetail(serial string) tea.Cmd {
	return func() tea.Msg { return GoMsg{Page: PageDetail, Serial: serial} }
}
