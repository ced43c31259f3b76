package bootstrap

import (
	"fmt"
	"testing"
)

func TestPoolSpreadsAndMovesOnlyTheNewShare(t *testing.T) {
	three := []string{"mqtts://a.example:8883", "mqtts://b.example:8883", "mqtts://c.example:8883"}
	p3, err := NewPool(three)
	if err != nil {
		t.Fatal(err)
	}
	p4, err := NewPool(append(three, "mqtts://d.example:8883"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 30000
	share := map[string]int{}
	moved := 0
	for i := range n {
		serial := fmt.Sprintf("GW-%06d", i)
		before, after := p3.Pick(serial), p4.Pick(serial)
		if p3.Pick(serial) != before {
			t.Fatal("Pick is not stable")
		}
		share[before]++
		if before != after {
			moved++
			if after != "mqtts://d.example:8883" {
				t.Fatalf("%s moved from %s to %s: only moves to the new endpoint are allowed", serial, before, after)
			}
		}
	}
	for e, c := range share {
		if c < n*30/100 || c > n*37/100 {
			t.Errorf("%s holds %d of %d gateways; want about a third", e, c, n)
		}
	}
	if moved < n*22/100 || moved > n*28/100 {
		t.Errorf("adding a fourth endpoint moved %d of %d gateways; want about a quarter", moved, n)
	}
}

func TestNewPoolRefuses(t *testing.T) {
	for _, bad := range [][]string{
		nil,
		{"mqtt://a.example:1883"},
		{"mqtts://a.example"},
		{"mqtts://a.example:0"},
		{"mqtts://a.example:8883/path"},
		{"mqtts://user@a.example:8883"},
		{"mqtts://a.example:8883", "mqtts://a.example:8883"},
		{"a.example:8883"},
	} {
		if _, err := NewPool(bad); err == nil {
			t.Errorf("NewPool(%q) accepted", bad)
		}
	}
}
