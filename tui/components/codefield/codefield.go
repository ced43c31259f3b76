// Package codefield is the claim code input: it groups the code as it is
// typed (XXXX-XXXX-C, XXXX-XXXX-XXXX-XXXX-C), reads it case-insensitively
// with I and L as 1 and O as 0, and once it is complete checks its check
// symbol locally with claim.ParseCode, so a typo shows before anything is
// sent.
package codefield

import (
	"errors"
	"fmt"
	"strings"

	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/tui/common"
)

// Symbol counts of the two kinds of code (data symbols and the check).
const (
	displayLen = 9
	labelLen   = 17
)

// symbols are the characters a code may hold: Crockford base32 and the
// extra check symbols.
const symbols = "0123456789ABCDEFGHJKMNPQRSTVWXYZ*~$=U"

// State is how far a code is.
type State int

const (
	Empty      State = iota
	Incomplete       // fewer symbols than a display or label code
	Valid            // complete and its check symbol matches
	Typo             // complete but the check symbol does not match
	Malformed        // complete length but not a code (a symbol out of place)
)

// Status is what Check says about a code.
type Status struct {
	State State
	// Code is the parsed code when State is Valid.
	Code claim.Code
	// Symbols is how many symbols were read.
	Symbols int
	// Message explains the state in one line ("" when Empty).
	Message string
}

// Normalize reads s as typed: case-insensitive, I and L as 1, O as 0,
// hyphens, spaces and anything that cannot be in a code dropped, at most 17
// symbols kept.
func Normalize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch r {
		case 'I', 'L':
			r = '1'
		case 'O':
			r = '0'
		}
		if r < 0x80 && strings.IndexByte(symbols, byte(r)) >= 0 && b.Len() < labelLen {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Group writes normalised symbols with a hyphen after every four:
// ABCD-EFGH-J, ABCD-EFGH-JKMN-PQRS-T, and the partial forms in between.
func Group(sym string) string {
	var b strings.Builder
	for i := 0; i < len(sym); i++ {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(sym[i])
	}
	return b.String()
}

// Format returns the grouped display of what was typed.
func Format(typed string) string { return Group(Normalize(typed)) }

// Check says whether the typed code is complete and, if so, whether its
// check symbol matches.
func Check(typed string) Status {
	sym := Normalize(typed)
	n := len(sym)
	switch {
	case n == 0:
		return Status{State: Empty}
	case n != displayLen && n != labelLen:
		want := displayLen
		if n > displayLen {
			want = labelLen
		}
		return Status{State: Incomplete, Symbols: n,
			Message: fmt.Sprintf("%d of %d symbols (display code 9, label code 17)", n, want)}
	}
	c, err := claim.ParseCode(sym)
	switch {
	case errors.Is(err, claim.ErrCodeTypo):
		return Status{State: Typo, Symbols: n,
			Message: "typo: the last symbol (the check) does not match; read the code again (nothing was sent)"}
	case err != nil:
		return Status{State: Malformed, Symbols: n,
			Message: "not a claim code: " + strings.TrimPrefix(err.Error(), claim.ErrCodeMalformed.Error()+": ")}
	}
	return Status{State: Valid, Code: c, Symbols: n,
		Message: fmt.Sprintf("%s code, check symbol matches", c.Kind)}
}

// Model is the code field.
type Model struct {
	common common.Common
	input  textinput.Model
}

// New returns an empty code field.
func New(c common.Common) Model {
	in := textinput.New()
	in.Prompt = ""
	in.Placeholder = "XXXX-XXXX-C"
	// Room for a pasted QR payload, which the claim page takes apart.
	in.CharLimit = 200
	in.Width = 24
	return Model{common: c, input: in}
}

// SetSize sets the width the field may use.
func (m *Model) SetSize(width, _ int) { m.input.Width = max(10, min(24, width)) }

// Init implements tea.Model.
func (m Model) Init() tea.Cmd { return nil }

// Update passes msg to the input and regroups what it holds.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

// Raw returns the text as typed or pasted, before grouping; the claim page
// looks at it for a QR payload first and then calls Regroup.
func (m Model) Raw() string { return m.input.Value() }

// Regroup replaces the text with its grouped form, cursor at the end.
func (m *Model) Regroup() {
	if g := Format(m.input.Value()); g != m.input.Value() {
		m.input.SetValue(g)
		m.input.CursorEnd()
	}
}

// SetValue sets the code (grouped).
func (m *Model) SetValue(s string) {
	m.input.SetValue(Format(s))
	m.input.CursorEnd()
}

// Value returns the grouped code.
func (m Model) Value() string { return Format(m.input.Value()) }

// Status checks the code.
func (m Model) Status() Status { return Check(m.input.Value()) }

// Focus and Blur move the cursor in and out of the field.
func (m *Model) Focus() tea.Cmd { return m.input.Focus() }
func (m *Model) Blur()          { m.input.Blur() }

// View renders the field.
func (m Model) View() string { return m.input.View() }
