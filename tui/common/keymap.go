package common

import "github.com/charmbracelet/bubbles/key"

// KeyMap is every key binding of the UI; pages pick the ones they show.
type KeyMap struct {
	Quit, Next, Prev, Submit, Back, Up, Down, Select, NewClaim, Logout key.Binding
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
	}
}
