// Package fleet is the operator's fleet table: serial, model, organisation,
// state (the claim state, or locked, or revoked), online, last seen and
// operational certificate expiry, paged,
// sorted and filtered by the server (GET /v1/devices), with the online and
// last seen columns refreshed every few seconds.
package fleet

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	gwclaim "github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/tui/common"
)

// RefreshEvery is how often the page shown is fetched again.
const RefreshEvery = 5 * time.Second

// Debounce is how long the filter waits for typing to pause.
const Debounce = 300 * time.Millisecond

// SortKeys are the sort columns the sort key cycles through.
var SortKeys = []string{gwclaim.SortSerial, gwclaim.SortModel, gwclaim.SortState, gwclaim.SortOrg, gwclaim.SortRegistered}

// PageMsg is the answer to the request ID.
type PageMsg struct {
	ID   int
	Page gwclaim.DevicePage
	Err  error
}

// TickMsg asks for a refresh; ticks of an older generation are dropped.
type TickMsg struct{ Gen int }

// DebounceMsg applies the filter if nothing was typed since Seq.
type DebounceMsg struct{ Seq int }

// Model is the fleet table.
type Model struct {
	common common.Common
	sort   int // index into SortKeys
	desc   bool
	q      string
	// afters is the stack of the After of each page seen: the last one is
	// the current page's; "previous" pops it.
	afters []string
	rows   []gwclaim.Device
	next   string
	cursor int

	reqID   int // the request whose answer is awaited or shown
	loading bool
	// moving: the awaited answer is of another page than the one shown
	// (paging, sorting, filtering), so its next cursor is not known yet.
	moving  bool
	err     string
	fetched time.Time

	tickGen   int
	filter    textinput.Model
	filtering bool
	filterSeq int
}

// New returns the fleet table, not yet loaded (see Init).
func New(c common.Common) Model {
	f := textinput.New()
	f.Prompt = "/"
	f.Placeholder = "serial or model"
	f.CharLimit = 256
	return Model{common: c, afters: []string{""}, filter: f}
}

// SetSize sets the screen's size.
func (m *Model) SetSize(width, height int) { m.common.Width, m.common.Height = width, height }

// Query returns the query of the current page.
func (m Model) Query() gwclaim.DeviceQuery {
	return gwclaim.DeviceQuery{After: m.afters[len(m.afters)-1], Sort: SortKeys[m.sort], Desc: m.desc,
		Search: m.q, Limit: m.limit()}
}

// Rows returns the devices shown; Depth the number of pages on the stack
// (1 on the first page); Loading whether an answer is awaited; RequestID
// the request whose answer is awaited.
func (m Model) Rows() []gwclaim.Device { return m.rows }
func (m Model) Depth() int             { return len(m.afters) }
func (m Model) Loading() bool          { return m.loading }
func (m Model) RequestID() int         { return m.reqID }
func (m Model) Err() string            { return m.err }

// limit is how many rows fit: the title, the status, the header and the
// filter line take four.
func (m Model) limit() int { return max(1, m.common.Height-4) }

// Init loads the first page and starts the refresh ticks.
func (m *Model) Init() tea.Cmd {
	m.tickGen++
	return tea.Batch(m.fetch(), m.tick())
}

func (m Model) tick() tea.Cmd {
	gen := m.tickGen
	return tea.Tick(RefreshEvery, func(time.Time) tea.Msg { return TickMsg{Gen: gen} })
}

// fetch starts a request for the current page; an answer to an older
// request is ignored.
func (m *Model) fetch() tea.Cmd {
	m.reqID++
	m.loading = true
	id, q, c := m.reqID, m.Query(), m.common.Client
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), common.RequestTimeout)
		defer cancel()
		p, err := common.Devices(ctx, c, q)
		return PageMsg{ID: id, Page: p, Err: err}
	}
}

// restart goes back to the first page (after a change of sort, order or
// filter: the cursors no longer apply).
func (m *Model) restart() tea.Cmd {
	m.afters = []string{""}
	return m.move()
}

// move fetches another page than the one shown.
func (m *Model) move() tea.Cmd {
	m.cursor = 0
	m.moving = true
	return m.fetch()
}

// ShortHelp returns the keys of the screen.
func (m Model) ShortHelp() []key.Binding {
	k := m.common.KeyMap
	if m.filtering {
		return []key.Binding{key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter/esc", "done")), k.Quit}
	}
	return []key.Binding{k.Select, k.NextPage, k.PrevPage, k.SortKey, k.SortOrder, k.Filter, k.Back}
}

// Update handles keys, answers, ticks and the filter's debounce.
func (m Model) Update(msg tea.Msg) (Model, tea.Cmd) {
	switch msg := msg.(type) {
	case PageMsg:
		if msg.ID != m.reqID {
			return m, nil // stale: a newer request is on its way
		}
		m.loading, m.moving = false, false
		if msg.Err != nil {
			m.err = common.ErrorLine("list gateways", msg.Err)
			return m, nil
		}
		m.err = ""
		m.rows, m.next = msg.Page.Devices, msg.Page.Next
		m.fetched = m.common.Now()
		m.cursor = min(m.cursor, max(0, len(m.rows)-1))
		return m, nil
	case TickMsg:
		if msg.Gen != m.tickGen {
			return m, nil
		}
		if m.loading {
			return m, m.tick() // a request is on its way; don't pile up
		}
		return m, tea.Batch(m.fetch(), m.tick())
	case DebounceMsg:
		if msg.Seq != m.filterSeq || m.filter.Value() == m.q {
			return m, nil
		}
		m.q = m.filter.Value()
		return m, m.restart()
	case tea.KeyMsg:
		if m.filtering {
			return m.updateFilter(msg)
		}
		k := m.common.KeyMap
		switch {
		case key.Matches(msg, k.Back):
			m.tickGen++ // stop refreshing
			return m, common.Go(common.PageHome)
		case key.Matches(msg, k.Up):
			m.cursor = max(0, m.cursor-1)
		case key.Matches(msg, k.Down):
			m.cursor = min(max(0, len(m.rows)-1), m.cursor+1)
		case key.Matches(msg, k.Select):
			if len(m.rows) > 0 {
				m.tickGen++ // the detail page is shown; Resume starts again
				return m, common.GoDetail(m.rows[m.cursor].Serial)
			}
		case key.Matches(msg, k.NextPage):
			if m.next != "" && !m.moving { // a refresh of this page may be on its way
				m.afters = append(m.afters, m.next)
				return m, m.move()
			}
		case key.Matches(msg, k.PrevPage):
			if len(m.afters) > 1 {
				m.afters = m.afters[:len(m.afters)-1]
				return m, m.move()
			}
		case key.Matches(msg, k.SortKey):
			m.sort = (m.sort + 1) % len(SortKeys)
			return m, m.restart()
		case key.Matches(msg, k.SortOrder):
			m.desc = !m.desc
			return m, m.restart()
		case key.Matches(msg, k.Refresh):
			return m, m.fetch()
		case key.Matches(msg, k.Filter):
			m.filtering = true
			return m, m.filter.Focus()
		}
	}
	return m, nil
}

func (m Model) updateFilter(msg tea.KeyMsg) (Model, tea.Cmd) {
	switch msg.Type {
	case tea.KeyEnter, tea.KeyEsc:
		m.filtering = false
		m.filter.Blur()
		if m.filter.Value() != m.q {
			m.filterSeq++
			m.q = m.filter.Value()
			return m, m.restart()
		}
		return m, nil
	}
	before := m.filter.Value()
	var cmd tea.Cmd
	m.filter, cmd = m.filter.Update(msg)
	if m.filter.Value() == before {
		return m, cmd
	}
	m.filterSeq++
	seq := m.filterSeq
	return m, tea.Batch(cmd, tea.Tick(Debounce, func(time.Time) tea.Msg { return DebounceMsg{Seq: seq} }))
}

// Resume is called when the table is shown again (back from a detail
// page): it reloads the page and restarts the refresh ticks.
func (m *Model) Resume() tea.Cmd { return m.Init() }

// column is one column of the table.
type column struct {
	title string
	width int
	// drop: columns are dropped in increasing drop order when the screen
	// is narrow; 0 is never dropped.
	drop int
	cell func(d gwclaim.Device) string
	// warn, when set, says the cell is shown as a warning.
	warn func(d gwclaim.Device) bool
}

func (m Model) columns() []column {
	now := m.common.Now()
	cols := []column{
		{"SERIAL", 12, 0, func(d gwclaim.Device) string { return d.Serial }, nil},
		{"MODEL", 10, 3, func(d gwclaim.Device) string { return d.Model }, nil},
		{"ORG", 10, 4, func(d gwclaim.Device) string { return d.Org }, nil},
		{"STATE", 9, 2, State, func(d gwclaim.Device) bool { return State(d) == StateLocked }},
		{"ONLINE", 6, 0, func(d gwclaim.Device) string {
			if d.Online {
				return "yes"
			}
			return "no"
		}, nil},
		{"LAST SEEN", 9, 0, func(d gwclaim.Device) string { return Ago(now, d.LastSeen) }, nil},
		{"CERT EXPIRY", 11, 1, func(d gwclaim.Device) string {
			if d.CertNotAfter.IsZero() {
				return "-"
			}
			return d.CertNotAfter.UTC().Format("2006-01-02")
		}, nil},
	}
	width := func() int {
		w := 0
		for _, c := range cols {
			w += c.width + 1
		}
		return w - 1
	}
	for drop := 4; drop >= 1 && width() > m.common.Width-2; drop-- {
		for i, c := range cols {
			if c.drop == drop {
				cols = append(cols[:i], cols[i+1:]...)
				break
			}
		}
	}
	// The serial column takes what is left over.
	if extra := m.common.Width - 2 - width(); extra > 0 {
		cols[0].width += min(extra, 20)
	}
	return cols
}

// Ago says how long ago t was, shortly: "12s ago", "5m ago", "3h ago",
// "2d ago"; "-" for never.
func Ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

func cell(s string, w int) string {
	s = ansi.Truncate(s, w, "…")
	return s + strings.Repeat(" ", max(0, w-ansi.StringWidth(s)))
}

// View renders the table.
func (m Model) View() string {
	s := m.common.Styles
	var b strings.Builder
	order := "↑"
	if m.desc {
		order = "↓"
	}
	title := fmt.Sprintf("Fleet  sorted by %s %s  page %d", SortKeys[m.sort], order, len(m.afters))
	b.WriteString(s.Title.Render(title) + "\n")
	switch {
	case m.filtering:
		b.WriteString(m.filter.View() + "\n")
	case m.q != "":
		b.WriteString(s.Subtle.Render("filter: "+m.q) + "\n")
	default:
		b.WriteString(s.Subtle.Render("/ to filter by serial or model") + "\n")
	}
	cols := m.columns()
	var hdr []string
	for _, c := range cols {
		hdr = append(hdr, cell(c.title, c.width))
	}
	b.WriteString(s.Subtle.Render("  "+strings.Join(hdr, " ")) + "\n")
	for i, d := range m.rows {
		var cells []string
		for _, c := range cols {
			text := cell(c.cell(d), c.width)
			// The cursor's row keeps its own colour throughout.
			if c.warn != nil && i != m.cursor && c.warn(d) {
				text = s.Warn.Render(text)
			}
			cells = append(cells, text)
		}
		line := strings.Join(cells, " ")
		if i == m.cursor {
			b.WriteString(s.Focused.Render("> "+line) + "\n")
		} else {
			b.WriteString("  " + line + "\n")
		}
	}
	if len(m.rows) == 0 && !m.loading && m.err == "" {
		b.WriteString(s.Subtle.Render("  no gateways match") + "\n")
	}
	for range max(0, m.limit()-max(1, len(m.rows))) {
		b.WriteString("\n")
	}
	switch {
	case m.err != "":
		b.WriteString(s.Error.Render(m.err))
	case m.loading && len(m.rows) == 0:
		b.WriteString(s.Subtle.Render("loading…"))
	default:
		more := "last page"
		if m.next != "" {
			more = "more: n"
		}
		b.WriteString(s.Subtle.Render(fmt.Sprintf("%d shown, %s, updated %s", len(m.rows), more, m.fetched.Format("15:04:05"))))
	}
	return lipgloss.NewStyle().MaxWidth(m.common.Width).Render(b.String())
}

// States of the state column besides the claim states.
const (
	StateRevoked = "revoked"
	StateLocked  = "locked"
)

// State is the state column: "revoked" for a gateway whose birth
// certificate is revoked (it can never come back), else "locked" for one
// whose claims are locked until an unlock, else the claim state. A
// back-off, which ends by itself, shows on the detail page only.
func State(d gwclaim.Device) string {
	switch {
	case d.Revoked:
		return StateRevoked
	case d.ClaimLock == gwclaim.ClaimLockLocked:
		return StateLocked
	}
	return d.State
}
