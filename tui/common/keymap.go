package common

import "github.com/charmbracelet/bubbles/key"

// KeyMap is every key binding of the UI; pages pick the ones they show.
type KeyMap struct {
	Quit, Next, Prev, Submit, Back, Up, Down, Select, NewClaim, Logout key.Binding
	// The fleet, detail and audit screens.
	NextPage, PrevPage, SortKey, SortOrder, Filter, Refresh, Revoke, Unclaim, Unlock, Confirm key.Binding
}

// DefaultKeyMap returns the UI's keys.
func DefaultKeyMap() *KeyMap {
	return &KeyMap{
		Quit:     key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit")),
		Next:     key.NewBinding(key.WithKeys("tab", "down"), key.WithHelp("tab", "next field")),
		Prev:     key.NewBinding(key.WithKeys("shift+tab", "up"), key.WithHelp("shift+tab", "previous field")),
		Submit:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "submit")),
		Back:     key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		Select:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open")),
		NewClaim: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "claim another")),
		Logout:   key.NewBinding(key.WithKeys("ctrl+o"), key.WithHelp("ctrl+o", "log out")),

		NextPage:  key.NewBinding(key.WithKeys("n", "pgdown"), key.WithHelp("n", "next page")),
		PrevPage:  key.NewBinding(key.WithKeys("p", "pgup"), key.WithHelp("p", "prev page")),
		SortKey:   key.NewBinding(key.WithKeys("s"), key.WithHelp("s", "sort by")),
		SortOrder: key.NewBinding(key.WithKeys("o"), key.WithHelp("o", "order")),
		Filter:    key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Refresh:   key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "reload")),
		Revoke:    key.NewBinding(key.WithKeys("R"), key.WithHelp("R", "revoke")),
		Unclaim:   key.NewBinding(key.WithKeys("U"), key.WithHelp("U", "unclaim")),
		Unlock:    key.NewBinding(key.WithKeys("L"), key.WithHelp("L", "unlock")),
		Confirm:   key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "yes")),
	}
}
