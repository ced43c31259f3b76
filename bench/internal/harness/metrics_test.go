package harness

import (
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	in := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 24
process_resident_memory_bytes 7.1524352e+07
gwpki_ocsp_responses_total{status="good",note="a b"} 3 1700000000000
`
	m, err := ParseMetrics(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"go_goroutines":                 24,
		"process_resident_memory_bytes": 71524352,
		`gwpki_ocsp_responses_total{status="good",note="a b"}`: 3,
	}
	if len(m) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(m), len(want), m)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if _, err := ParseMetrics(strings.NewReader("novalue\n")); err == nil {
		t.Error("a line without a value parsed")
	}
}
