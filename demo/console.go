package demo

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// console is a gateway's display as the demo sees it: the agent writes
// lines to it, the demo waits for the ones it expects.
type console struct {
	mu      sync.Mutex
	lines   []string
	partial string
	changed chan struct{} // closed and replaced on every new line
}

func newConsole() *console { return &console{changed: make(chan struct{})} }

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	text := c.partial + string(p)
	parts := strings.Split(text, "\n")
	c.partial = parts[len(parts)-1]
	if added := parts[:len(parts)-1]; len(added) > 0 {
		c.lines = append(c.lines, added...)
		close(c.changed)
		c.changed = make(chan struct{})
	}
	return len(p), nil
}

// mark is the number of lines written so far; await looks past it.
func (c *console) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

// await returns the submatches of the first line from index from on that
// matches re, waiting for it until ctx ends.
func (c *console) await(ctx context.Context, from int, re *regexp.Regexp) ([]string, error) {
	for {
		c.mu.Lock()
		for _, l := range c.lines[min(from, len(c.lines)):] {
			if m := re.FindStringSubmatch(l); m != nil {
				c.mu.Unlock()
				return m, nil
			}
		}
		changed := c.changed
		last := ""
		if len(c.lines) > 0 {
			last = c.lines[len(c.lines)-1]
		}
		c.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			if last != "" {
				return nil, fmt.Errorf("%w waiting for %q on the gateway's console (its last line: %q)", ctx.Err(), re, last)
			}
			return nil, fmt.Errorf("%w waiting for %q on the gateway's console (it printed nothing)", ctx.Err(), re)
		}
	}
}
