package gateway

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gwpki/gwpki/gateway/gatewaytest"
)

// TestAgentScale runs GWPKI_AGENT_SCALE agents (say 2000) in this process
// against the test broker and reports goroutines per agent; skipped unless
// the variable is set, since it takes minutes on a small machine.
func TestAgentScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("GWPKI_AGENT_SCALE"))
	if n <= 0 {
		t.Skip("set GWPKI_AGENT_SCALE=N to run N agents")
	}
	srv := gatewaytest.New(t)
	out := t.TempDir()
	base := runtime.NumGoroutine()
	agents := make([]*Agent, n)
	for i := range agents {
		b, err := LoadBundle(srv.WriteBundle(t, out, fmt.Sprintf("GW-%06d", i+1)))
		if err != nil {
			t.Fatal(err)
		}
		agents[i] = NewAgent(b, AgentOptions{Interval: 5 * time.Second})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	start := time.Now()
	for _, a := range agents {
		wg.Add(1)
		go func() { defer wg.Done(); a.Run(ctx) }()
		time.Sleep(2 * time.Millisecond)
	}
	srv.WaitFor(t, 10*time.Minute, "want every agent connected", func() bool {
		c := 0
		for _, a := range agents {
			if a.Status().Connected {
				c++
			}
		}
		return c == n
	})
	t.Logf("%d agents connected in %s; %.1f goroutines per agent (client and broker side)", n, time.Since(start).Round(time.Second),
		float64(runtime.NumGoroutine()-base)/float64(n))
	time.Sleep(6 * time.Second)
	var published uint64
	for _, a := range agents {
		published += a.Status().Acked
	}
	if published < uint64(n) {
		t.Errorf("%d telemetry messages acked from %d agents after 6s; want one each at least", published, n)
	}
}
