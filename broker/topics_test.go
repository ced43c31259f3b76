package broker

import (
	"strings"
	"testing"
)

func TestTopicRules(t *testing.T) {
	tests := []struct {
		topic      string
		pub, sub   bool
		coversCmd  bool // filter matches gw/S1/cmd/claimed
		wantFilter bool // whether matchFilter(topic, gw/S1/cmd/claimed) is asked
	}{
		{topic: "gw/S1/telemetry", pub: true},
		{topic: "gw/S1/telemetry/pump/1", pub: true},
		{topic: "gw/S1/state", pub: true},
		{topic: "gw/S1/state/x"},
		{topic: "gw/S1/telemetryx"},
		{topic: "gw/S1/cmd/claimed", sub: true, coversCmd: true},
		{topic: "gw/S1/cmd/#", sub: true, coversCmd: true},
		{topic: "gw/S1/cmd/+", sub: true, coversCmd: true},
		{topic: "gw/S1/cmd/other", sub: true},
		{topic: "gw/S1/cmd"},
		{topic: "gw/S1/#", coversCmd: true},
		{topic: "gw/+/cmd/#", coversCmd: true},
		{topic: "#", coversCmd: true},
		{topic: "gw/S2/telemetry"},
		{topic: "gw/S2/cmd/#"},
		{topic: "gw/S1/telemetry/#"},
		{topic: "gw/S1/telemetry/+"},
		{topic: "gw/S1/telemetry/\x00"},
		{topic: "$share/g/gw/S1/cmd/#"},
		{topic: "/gw/S1/telemetry"},
		{topic: ""},
	}
	for _, tt := range tests {
		if got := mayPublish("S1", tt.topic); got != tt.pub {
			t.Errorf("mayPublish(S1, %q) = %v; want %v", tt.topic, got, tt.pub)
		}
		if got := maySubscribe("S1", tt.topic); got != tt.sub {
			t.Errorf("maySubscribe(S1, %q) = %v; want %v", tt.topic, got, tt.sub)
		}
		if got := matchFilter(tt.topic, "gw/S1/cmd/claimed"); got != tt.coversCmd {
			t.Errorf("matchFilter(%q, gw/S1/cmd/claimed) = %v; want %v", tt.topic, got, tt.coversCmd)
		}
	}
}

func TestMatchFilter(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+/c", "a/b/c", true},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"+", "a", true},
		{"+/+", "a", false},
		{"#", "a/b", true},
		{"a//b", "a//b", true},
	}
	for _, tt := range tests {
		if got := matchFilter(tt.filter, tt.topic); got != tt.want {
			t.Errorf("matchFilter(%q, %q) = %v; want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestValidSerial(t *testing.T) {
	for s, want := range map[string]bool{
		"GW-0001": true, "": false, "a/b": false, "a+": false, "#": false, "$SYS": false,
		"a\x00": false, strings.Repeat("x", maxSerialLen+1): false, "\xff": false,
	} {
		if got := validSerial(s); got != want {
			t.Errorf("validSerial(%q) = %v; want %v", s, got, want)
		}
	}
}

// FuzzTopicRules checks, for any serial and topic a client can send, that
// the rules never let a gateway out of its own gw/<serial>/ subtree and
// never panic. Seeds are in testdata/fuzz/FuzzTopicRules.
func FuzzTopicRules(f *testing.F) {
	f.Add("S1", "gw/S1/telemetry", "gw/S1/cmd/claimed")
	f.Fuzz(func(t *testing.T, serial, topic, name string) {
		pub, sub := mayPublish(serial, topic), maySubscribe(serial, topic)
		prefix := "gw/" + serial + "/"
		if (pub || sub) && (!validSerial(serial) || !strings.HasPrefix(topic, prefix)) {
			t.Fatalf("serial %q allowed on %q", serial, topic)
		}
		if pub && strings.ContainsAny(topic, "+#") {
			t.Fatalf("publish with wildcard allowed: %q", topic)
		}
		if sub && !strings.HasPrefix(topic, prefix+"cmd/") {
			t.Fatalf("subscribe outside cmd/ allowed: %q", topic)
		}
		// An allowed subscription only ever matches topics in the gateway's
		// own cmd subtree (gw/<serial>/cmd/# matches gw/<serial>/cmd too).
		inCmd := name == prefix+"cmd" || strings.HasPrefix(name, prefix+"cmd/")
		if sub && !strings.ContainsAny(name, "+#") && matchFilter(topic, name) && !inCmd {
			t.Fatalf("filter %q allowed for %q matches %q", topic, serial, name)
		}
	})
}
