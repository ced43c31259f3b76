package telemetry

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gwpki/gwpki/internal/store"
)

// fakeClock is an injected clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
	// step, when set, advances the clock on every reading, so that
	// consecutive appends get strictly increasing times.
	step time.Duration
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.t
	c.t = c.t.Add(c.step)
	return now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var base = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

// openTemp opens a telemetry store under tb.TempDir. At cleanup it closes it
// (if the test has not) and checks the file's consistency.
func openTemp(tb testing.TB, opts Options) (*Store, string) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "telemetry.db")
	s, err := Open(path, opts)
	if err != nil {
		tb.Fatalf("Open(%s): %v", path, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
		checkFile(tb, path)
	})
	return s, path
}

// checkFile runs bbolt's consistency check on a closed file.
func checkFile(tb testing.TB, path string) {
	tb.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		tb.Fatalf("reopen %s for check: %v", path, err)
	}
	defer db.Close()
	if err := db.Check(); err != nil {
		tb.Errorf("telemetry file %s is inconsistent: %v", path, err)
	}
}

func msg(gw, sub string, t time.Time, payload string) Message {
	return Message{Gateway: gw, Topic: fmt.Sprintf("gw/%s/%s", gw, sub), Time: t, Payload: []byte(payload)}
}
