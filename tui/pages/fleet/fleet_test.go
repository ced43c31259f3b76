package fleet

import (
	"errors"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	gwclaim "github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/tui/common"
)

func newModel() Model {
	c := common.New()
	c.Now = func() time.Time { return time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC) }
	m := New(c)
	m.Init()
	return m
}

func runes(s string) tea.KeyMsg { return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)} }

func page(serials ...string) gwclaim.DevicePage {
	var p gwclaim.DevicePage
	for _, s := range serials {
		p.Devices = append(p.Devices, gwclaim.Device{Serial: s})
	}
	return p
}

// answer feeds the answer to the request awaited.
func answer(m Model, p gwclaim.DevicePage) Model {
	m, _ = m.Update(PageMsg{ID: m.RequestID(), Page: p})
	return m
}

// TestFleetSortKeys: s cycles the sort column and wraps; o flips the
// order; each goes back to the first page and asks again.
func TestFleetSortKeys(t *testing.T) {
	m := answer(newModel(), gwclaim.DevicePage{Next: "GW-2"})
	m, _ = m.Update(runes("n"))
	for _, tc := range []struct {
		key  string
		sort string
		desc bool
	}{
		{"s", gwclaim.SortModel, false}, {"o", gwclaim.SortModel, true}, {"s", gwclaim.SortState, true},
		{"s", gwclaim.SortOrg, true}, {"s", gwclaim.SortRegistered, true}, {"s", gwclaim.SortSerial, true},
		{"o", gwclaim.SortSerial, false},
	} {
		before := m.RequestID()
		var cmd tea.Cmd
		m, cmd = m.Update(runes(tc.key))
		q := m.Query()
		if q.Sort != tc.sort || q.Desc != tc.desc || q.After != "" || m.Depth() != 1 {
			t.Errorf("after %q: query %+v, depth %d; want sort %s desc %v on the first page", tc.key, q, m.Depth(), tc.sort, tc.desc)
		}
		if cmd == nil || m.RequestID() != before+1 || !m.Loading() {
			t.Errorf("after %q: no new request", tc.key)
		}
	}
}

// TestFleetFilter: typing in the filter box is debounced: only the last
// pause applies q; enter applies at once; a debounce of older typing is
// ignored.
func TestFleetFilter(t *testing.T) {
	m := answer(newModel(), page("GW-1"))
	m, _ = m.Update(runes("/"))
	m, _ = m.Update(runes("p"))
	m, _ = m.Update(runes("u"))
	if got := m.Query().Search; got != "" {
		t.Fatalf("while typing: q = %q; want none yet", got)
	}
	id := m.RequestID()
	m, cmd := m.Update(DebounceMsg{Seq: m.filterSeq - 1}) // typing went on after it
	if cmd != nil || m.Query().Search != "" || m.RequestID() != id {
		t.Errorf("old debounce: q = %q, request %d; want nothing sent", m.Query().Search, m.RequestID())
	}
	m, cmd = m.Update(DebounceMsg{Seq: m.filterSeq})
	if m.Query().Search != "pu" || cmd == nil || m.RequestID() != id+1 {
		t.Errorf("debounce: q = %q, request %d; want q=pu sent as %d", m.Query().Search, m.RequestID(), id+1)
	}
	m, _ = m.Update(runes("m"))
	m, cmd = m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	if m.Query().Search != "pum" || cmd == nil || m.filtering {
		t.Errorf("enter: q = %q, filtering %v; want q=pum sent and the box closed", m.Query().Search, m.filtering)
	}
}

// TestFleetPageStack: n pushes the next cursor, p pops back to the
// previous page's cursor, p on the first page and n on the last do
// nothing.
func TestFleetPageStack(t *testing.T) {
	m := newModel()
	m = answer(m, gwclaim.DevicePage{Devices: page("GW-1", "GW-2").Devices, Next: "~c1"})
	m, _ = m.Update(runes("n"))
	if q := m.Query(); q.After != "~c1" || m.Depth() != 2 {
		t.Fatalf("after n: after %q depth %d; want ~c1, 2", q.After, m.Depth())
	}
	m = answer(m, gwclaim.DevicePage{Devices: page("GW-3").Devices, Next: "~c2"})
	m, _ = m.Update(runes("n"))
	m = answer(m, page("GW-5")) // the last page
	if q := m.Query(); q.After != "~c2" || m.Depth() != 3 {
		t.Fatalf("after n n: after %q depth %d; want ~c2, 3", q.After, m.Depth())
	}
	id := m.RequestID()
	if m, cmd := m.Update(runes("n")); cmd != nil || m.Depth() != 3 || m.RequestID() != id {
		t.Errorf("n on the last page: depth %d; want nothing", m.Depth())
	}
	// n while a refresh of the page is on its way pages on; a second n
	// before the next page's answer does not skip a page.
	m2, _ := m.Update(runes("p"))
	m2 = answer(m2, gwclaim.DevicePage{Devices: page("GW-3").Devices, Next: "~c2"})
	m2, _ = m2.Update(TickMsg{Gen: m2.tickGen})
	m2, _ = m2.Update(runes("n"))
	m2, cmd := m2.Update(runes("n"))
	if q := m2.Query(); q.After != "~c2" || m2.Depth() != 3 || cmd != nil {
		t.Errorf("n during a refresh, then n: after %q depth %d; want ~c2, 3 and no second request", q.After, m2.Depth())
	}
	m, _ = m.Update(runes("p"))
	if q := m.Query(); q.After != "~c1" || m.Depth() != 2 {
		t.Errorf("after p: after %q depth %d; want ~c1, 2", q.After, m.Depth())
	}
	m, _ = m.Update(runes("p"))
	m, cmd = m.Update(runes("p"))
	if q := m.Query(); q.After != "" || m.Depth() != 1 || cmd != nil {
		t.Errorf("p p p: after %q depth %d; want the first page and nothing more", q.After, m.Depth())
	}
}

// TestFleetTickIgnoresStale: a tick asks for the current page again; an
// answer to an older request is dropped, so a slow answer cannot replace
// a newer one; ticks of an older generation are dropped too.
func TestFleetTickIgnoresStale(t *testing.T) {
	m := answer(newModel(), page("GW-1"))
	first := m.RequestID()
	m, cmd := m.Update(TickMsg{Gen: m.tickGen})
	if cmd == nil || m.RequestID() != first+1 {
		t.Fatalf("tick: request %d; want %d", m.RequestID(), first+1)
	}
	m, _ = m.Update(runes("o")) // the user sorts before the tick's answer
	m, _ = m.Update(PageMsg{ID: first + 1, Page: page("GW-stale")})
	if len(m.Rows()) != 1 || m.Rows()[0].Serial != "GW-1" || !m.Loading() {
		t.Errorf("stale answer shown: %+v", m.Rows())
	}
	m, _ = m.Update(PageMsg{ID: m.RequestID(), Page: page("GW-9", "GW-8")})
	if len(m.Rows()) != 2 || m.Rows()[0].Serial != "GW-9" || m.Loading() {
		t.Errorf("current answer: %+v; want GW-9 GW-8", m.Rows())
	}
	if _, cmd := m.Update(TickMsg{Gen: m.tickGen - 1}); cmd != nil {
		t.Errorf("tick of an older generation started a request")
	}
	m, _ = m.Update(PageMsg{ID: m.RequestID(), Err: errors.New("boom")})
	if m.Err() == "" || len(m.Rows()) != 2 {
		t.Errorf("error: %q rows %d; want the error and the rows kept", m.Err(), len(m.Rows()))
	}
}

// TestAgo: the last seen column.
func TestAgo(t *testing.T) {
	now := time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{{0, "now"}, {12 * time.Second, "12s ago"}, {5 * time.Minute, "5m ago"}, {3 * time.Hour, "3h ago"}, {72 * time.Hour, "3d ago"}} {
		if got := Ago(now, now.Add(-tc.d)); got != tc.want {
			t.Errorf("Ago(%v) = %q; want %q", tc.d, got, tc.want)
		}
	}
	if got := Ago(now, time.Time{}); got != "-" {
		t.Errorf("Ago(zero) = %q; want -", got)
	}
}

// TestFleetState: the state column says revoked over locked over the claim
// state; a back-off is no state.
func TestFleetState(t *testing.T) {
	for _, tc := range []struct {
		d    gwclaim.Device
		want string
	}{
		{gwclaim.Device{State: gwclaim.StateClaimed}, "claimed"},
		{gwclaim.Device{State: gwclaim.StateUnclaimed, ClaimLock: gwclaim.ClaimLockBackoff}, "unclaimed"},
		{gwclaim.Device{State: gwclaim.StateClaimed, ClaimLock: gwclaim.ClaimLockLocked}, StateLocked},
		{gwclaim.Device{State: gwclaim.StateClaimed, ClaimLock: gwclaim.ClaimLockLocked, Revoked: true}, StateRevoked},
	} {
		if got := State(tc.d); got != tc.want {
			t.Errorf("State(%+v) = %s; want %s", tc.d, got, tc.want)
		}
	}
	m := newModel()
	m.SetSize(80, 10)
	m = answer(m, gwclaim.DevicePage{Devices: []gwclaim.Device{
		{Serial: "GW-1", State: gwclaim.StateClaimed}, {Serial: "GW-2", State: gwclaim.StateClaimed, ClaimLock: gwclaim.ClaimLockLocked},
	}})
	if v := ansi.Strip(m.View()); !strings.Contains(v, "GW-2") || !strings.Contains(v, " locked ") {
		t.Errorf("table with a locked row:\n%s", v)
	}
}
