package common

import "github.com/charmbracelet/lipgloss"

// Styles are the lipgloss styles of the UI.
type Styles struct {
	Title, Subtle, Label, Focused, Error, OK, Warn, Box lipgloss.Style
}

// DefaultStyles returns the UI's styles.
func DefaultStyles() *Styles {
	return &Styles{
		Title:   lipgloss.NewStyle().Bold(true).Foreground(lipgloss.Color("63")),
		Subtle:  lipgloss.NewStyle().Foreground(lipgloss.Color("245")),
		Label:   lipgloss.NewStyle().Width(12),
		Focused: lipgloss.NewStyle().Foreground(lipgloss.Color("212")),
		Error:   lipgloss.NewStyle().Foreground(lipgloss.Color("196")),
		OK:      lipgloss.NewStyle().Foreground(lipgloss.Color("42")),
		Warn:    lipgloss.NewStyle().Foreground(lipgloss.Color("214")),
		Box:     lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).Padding(0, 1),
	}
}
