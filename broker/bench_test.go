package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/gwpki/gwpki/telemetry"
)

type nopSink struct{}

func (nopSink) Append(context.Context, telemetry.Message) error { return nil }

// BenchmarkPublishQoS1 measures QoS 1 publishes through TLS into a no-op
// sink, each acknowledged by PUBACK: one gateway waiting for every PUBACK,
// and several gateways with up to 32 publishes in flight each.
func BenchmarkPublishQoS1(b *testing.B) {
	payload := []byte(`{"flow":12.5,"pressure":3.1,"pump":"on","ts":"2026-01-01T00:00:00Z"}`)
	for _, bc := range []struct {
		gateways, window int
	}{{1, 1}, {1, 32}, {8, 32}} {
		b.Run(fmt.Sprintf("gateways=%d/inflight=%d", bc.gateways, bc.window), func(b *testing.B) {
			e := newEnv(b, func(o *Options) {
				o.Sink = nopSink{}
				o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
			})
			clients := make([]paho.Client, bc.gateways)
			topics := make([]string, bc.gateways)
			for i := range clients {
				serial := fmt.Sprintf("BENCH%04d", i)
				clients[i] = e.connect(b, e.pahoOptions(e.gateway(b, serial), serial).SetMaxResumePubInFlight(bc.window))
				topics[i] = "gw/" + serial + "/telemetry"
			}
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for i, c := range clients {
				n := b.N / bc.gateways
				if i == 0 {
					n += b.N % bc.gateways
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					window := make([]paho.Token, 0, bc.window)
					for range n {
						if len(window) == bc.window {
							if !window[0].WaitTimeout(10*time.Second) || window[0].Error() != nil {
								b.Errorf("publish: no PUBACK (%v)", window[0].Error())
								return
							}
							window = window[1:]
						}
						window = append(window, c.Publish(topics[i], 1, false, payload))
					}
					for _, t := range window {
						if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
							b.Errorf("publish: no PUBACK (%v)", t.Error())
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
