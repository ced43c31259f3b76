package demo

import (
	"fmt"
	"io"
	"time"
)

// narrator prints the story: numbered steps, what happens in them, and
// every check with its outcome. It counts the checks so the end can say
// how many passed.
type narrator struct {
	w      io.Writer
	step   int
	checks int
	start  time.Time
}

// title starts the next step.
func (n *narrator) title(format string, args ...any) {
	n.step++
	fmt.Fprintf(n.w, "\n%2d  %s\n", n.step, fmt.Sprintf(format, args...))
}

// say prints a line of the current step.
func (n *narrator) say(format string, args ...any) {
	fmt.Fprintf(n.w, "    %s\n", fmt.Sprintf(format, args...))
}

// ok records a passed check.
func (n *narrator) ok(format string, args ...any) {
	n.checks++
	fmt.Fprintf(n.w, "    ✓ %s\n", fmt.Sprintf(format, args...))
}

// failed reports the check that failed; the story stops there.
func (n *narrator) failed(err error) {
	fmt.Fprintf(n.w, "    ✗ %v\n", err)
}

func since(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	default:
		return d.Round(10 * time.Millisecond).String()
	}
}
