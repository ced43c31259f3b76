package audit

import (
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	gwaudit "github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/tui/common"
)

func runes(s string) tea.KeyMsg { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)} }

func answer(m Model, p gwaudit.Page) Model {
	m, _ = m.Update(PageMsg{ID: m.RequestID(), Page: p})
	return m
}

// TestAuditPagingAndFilter: n asks for the entries before the page's
// next, p goes back; / and enter set the action and start from the newest;
// a stale answer is dropped.
func TestAuditPagingAndFilter(t *testing.T) {
	m := New(common.New())
	m.Init()
	m = answer(m, gwaudit.Page{Entries: []gwaudit.Entry{{Seq: 90}}, Next: 90})
	m, cmd := m.Update(runes("n"))
	if q := m.Query(); q.Before != 90 || m.Depth() != 2 || cmd == nil {
		t.Fatalf("n: before %d depth %d; want 90, 2", q.Before, m.Depth())
	}
	stale := m.RequestID()
	m = answer(m, gwaudit.Page{Entries: []gwaudit.Entry{{Seq: 40}}}) // the oldest
	if _, cmd := m.Update(runes("n")); cmd != nil {
		t.Errorf("n on the oldest page sent a request")
	}
	m, _ = m.Update(runes("/"))
	for _, r := range "revoke" {
		m, _ = m.Update(runes(string(r)))
	}
	m, cmd = m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	if q := m.Query(); q.Action != "revoke" || q.Before != 0 || m.Depth() != 1 || cmd == nil {
		t.Errorf("filter: query %+v depth %d; want action revoke from the newest", q, m.Depth())
	}
	m, _ = m.Update(PageMsg{ID: stale, Page: gwaudit.Page{Entries: []gwaudit.Entry{{Seq: 1}}}})
	if len(m.Entries()) != 1 || m.Entries()[0].Seq != 40 {
		t.Errorf("stale answer shown: %+v", m.Entries())
	}
	m, _ = m.Update(runes("/"))
	m, _ = m.Update(runes("x"))
	m, cmd = m.Update(tea.KeyMsg{Type: tea.KeyEsc})
	if m.Query().Action != "revoke" || cmd != nil {
		t.Errorf("esc: action %q; want revoke kept, nothing sent", m.Query().Action)
	}
}
