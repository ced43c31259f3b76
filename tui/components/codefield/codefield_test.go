package codefield

import (
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/tui/common"
)

// TestTUICodeFieldTyping types codes one key at a time, as a person does,
// and checks the grouped text and the verdict after the last key.
func TestTUICodeFieldTyping(t *testing.T) {
	display := claim.FormatDisplay([]byte{1, 2, 3, 4, 5})            // XXXX-XXXX-C
	label := claim.FormatLabel([]byte{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}) // XXXX-XXXX-XXXX-XXXX-C
	typo := display[:len(display)-1] + map[bool]string{true: "1", false: "0"}[display[len(display)-1] == '0']
	for _, tc := range []struct {
		name, typed, want string
		state             State
	}{
		{"empty", "", "", Empty},
		{"four", "abcd", "ABCD", Incomplete},
		{"five groups after four", "abcde", "ABCD-E", Incomplete},
		{"misreadings", "ilo0", "1100", Incomplete},
		{"hyphens and spaces ignored", "ab-c d", "ABCD", Incomplete},
		{"other characters dropped", "a.b/c:d", "ABCD", Incomplete},
		{"display code", display, display, Valid},
		{"display code lower case without hyphens", lower(display), display, Valid},
		{"display code typo", typo, typo, Typo},
		{"between the two kinds", display + "AB", display + "AB", Incomplete},
		{"label code", label, label, Valid},
		{"capped at 17 symbols", label + "XYZ", label, Valid},
		{"U only as check", "UUUU-UUUU-U", "UUUU-UUUU-U", Malformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := New(common.New())
			m.Focus()
			for _, r := range tc.typed {
				m, _ = m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
				m.Regroup()
			}
			if got := m.Value(); got != tc.want {
				t.Errorf("value = %q; want %q", got, tc.want)
			}
			st := m.Status()
			if st.State != tc.state {
				t.Errorf("state = %v (%s); want %v", st.State, st.Message, tc.state)
			}
			if tc.state == Typo && st.Message != "typo: the last symbol (the check) does not match; read the code again (nothing was sent)" {
				t.Errorf("typo message = %q", st.Message)
			}
		})
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '-' {
			b[i] = ' '
		} else if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
