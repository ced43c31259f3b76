package ca

import (
	"fmt"
	"testing"
	"time"
)

func TestRefusalLimiter(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newRefusalLimiter(func() time.Time { return now })
	for i := range maxRefusals {
		if !l.allow("192.0.2.1") {
			t.Fatalf("refused after %d refusals; want %d allowed", i, maxRefusals)
		}
		l.refused("192.0.2.1")
	}
	if l.allow("192.0.2.1") {
		t.Errorf("allowed after %d refusals in one window", maxRefusals)
	}
	if !l.allow("192.0.2.2") {
		t.Error("another address is limited too")
	}
	now = now.Add(refusalWindow)
	if !l.allow("192.0.2.1") {
		t.Error("still limited once the window has passed")
	}
}

func TestRefusalLimiterIsBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newRefusalLimiter(func() time.Time { return now })
	for i := range 3 * maxRefusalIPs {
		l.refused(fmt.Sprintf("198.51.%d.%d", i/256, i%256))
	}
	if n := len(l.counts); n > maxRefusalIPs {
		t.Errorf("limiter tracks %d addresses; want at most %d", n, maxRefusalIPs)
	}
}
