package broker

import (
	"context"
	"encoding/binary"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/gwpki/gwpki/telemetry"
)

// gateSink holds back the appends of the payloads it was told to, until
// released; the others it stores at once.
type gateSink struct {
	mu    sync.Mutex
	gates map[string]chan struct{}
	got   []string
}

func (s *gateSink) Append(ctx context.Context, m telemetry.Message) error {
	s.mu.Lock()
	gate := s.gates[string(m.Payload)]
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	s.got = append(s.got, string(m.Payload))
	s.mu.Unlock()
	return nil
}

// publishPacket is an MQTT 3.1.1 QoS 1 PUBLISH.
func publishPacket(topic string, id uint16, payload string) []byte {
	var body []byte
	body = binary.BigEndian.AppendUint16(body, uint16(len(topic)))
	body = append(body, topic...)
	body = binary.BigEndian.AppendUint16(body, id)
	body = append(body, payload...)
	return append([]byte{0x32, byte(len(body))}, body...)
}

// TestPubacksInOrderWhileStoresOverlap: a gateway's messages are stored
// at the same time, but each PUBACK waits for its own message and every
// earlier one, and they leave in the order the PUBLISHes came.
func TestPubacksInOrderWhileStoresOverlap(t *testing.T) {
	sink := &gateSink{gates: map[string]chan struct{}{"one": make(chan struct{})}}
	e := newEnv(t, func(o *Options) { o.Sink = sink })
	gw := e.gateway(t, "GW0100")
	c := e.dialTLS(t, gw)
	if _, err := c.Write(connectPacket("GW0100", 30)); err != nil {
		t.Fatal(err)
	}
	if code := readConnack(t, c); code != 0 {
		t.Fatalf("CONNACK code %d", code)
	}
	for i, p := range []string{"one", "two", "three"} {
		if _, err := c.Write(publishPacket("gw/GW0100/telemetry", uint16(i+1), p)); err != nil {
			t.Fatal(err)
		}
	}
	// "two" and "three" are stored while "one" waits, and not acknowledged.
	eventually(t, 5*time.Second, "two and three stored", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return len(sink.got) == 2
	})
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var b [4]byte
	if n, err := c.Read(b[:]); err == nil {
		t.Fatalf("got % x before the first message was stored; want nothing", b[:n])
	}
	close(sink.gates["one"])
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for want := uint16(1); want <= 3; want++ {
		if _, err := io.ReadFull(c, b[:]); err != nil {
			t.Fatalf("read PUBACK %d: %v", want, err)
		}
		if b[0] != 0x40 || b[1] != 2 || binary.BigEndian.Uint16(b[2:]) != want {
			t.Fatalf("got % x; want PUBACK %d", b, want)
		}
	}
}
