package broker

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"io"
	"math"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func TestBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := newLimiter(2, 3) // 2 a second, bursts of 3
	k := l.acquire("GW", t0)
	for i := range 3 {
		if !k.take(t0, l.rate, l.burst) {
			t.Fatalf("take %d of the burst refused", i+1)
		}
	}
	if k.take(t0, l.rate, l.burst) {
		t.Fatal("a fourth take at once allowed; want the burst of 3 only")
	}
	// Half a second brings one token, and only one.
	if !k.take(t0.Add(500*time.Millisecond), l.rate, l.burst) {
		t.Fatal("no token after half a second at 2/s")
	}
	if k.take(t0.Add(500*time.Millisecond), l.rate, l.burst) {
		t.Fatal("two tokens after half a second at 2/s")
	}
	// A long pause refills up to the burst, not beyond.
	t1 := t0.Add(time.Hour)
	n := 0
	for k.take(t1, l.rate, l.burst) {
		n++
	}
	if n != 3 {
		t.Fatalf("after an hour %d tokens; want the burst, 3", n)
	}
	// A clock going backwards takes nothing away and gives nothing.
	if k.take(t0, l.rate, l.burst) {
		t.Fatal("token from a clock that went backwards")
	}
}

func TestBucketFractionalRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := newLimiter(0.1, 1) // one every 10 s
	k := l.acquire("GW", t0)
	if !k.take(t0, l.rate, l.burst) {
		t.Fatal("first take refused")
	}
	if k.take(t0.Add(9*time.Second), l.rate, l.burst) {
		t.Fatal("token after 9 s at 0.1/s")
	}
	if !k.take(t0.Add(10*time.Second), l.rate, l.burst) {
		t.Fatal("no token after 10 s at 0.1/s")
	}
}

func TestRefusalLoggedOncePerInterval(t *testing.T) {
	t0 := time.Unix(1000, 0)
	k := newLimiter(1, 1).acquire("GW", t0)
	if log, n := k.refusal(t0); !log || n != 1 {
		t.Fatalf("first refusal: log %v, n %d; want true, 1", log, n)
	}
	for i := range 100 {
		if log, _ := k.refusal(t0.Add(time.Duration(i) * 50 * time.Millisecond)); log {
			t.Fatalf("refusal %d logged within %v of the last line", i, limitLogInterval)
		}
	}
	if log, n := k.refusal(t0.Add(limitLogInterval)); !log || n != 101 {
		t.Fatalf("after the interval: log %v, n %d; want true, 101 (the ones not logged)", log, n)
	}
}

func TestLimiterSharedAndSwept(t *testing.T) {
	t0 := time.Unix(1000, 0)
	l := newLimiter(1, 10)
	a := l.acquire("GW1", t0)
	b := l.acquire("GW1", t0) // a session takeover: the same bucket
	if a != b {
		t.Fatal("two sessions of one gateway got different buckets")
	}
	for a.take(t0, l.rate, l.burst) {
	}
	l.release(a)
	l.sweep(t0.Add(time.Hour))
	if l.size() != 1 {
		t.Fatal("bucket of a connected gateway swept")
	}
	l.release(b)
	// Disconnected and not full again (5 of 10 tokens): kept, and a
	// reconnecting gateway gets it back.
	l.sweep(t0.Add(5 * time.Second))
	if c := l.acquire("GW1", t0.Add(5*time.Second)); c != a {
		t.Fatal("a gateway reconnecting within the refill time got a new bucket")
	}
	l.release(a)
	l.sweep(t0.Add(9 * time.Second))
	if l.size() != 1 {
		t.Fatal("bucket swept before it was full again")
	}
	l.sweep(t0.Add(time.Minute))
	if l.size() != 0 {
		t.Fatal("full bucket of a disconnected gateway kept")
	}
}

// readPacket reads one MQTT packet and returns its first byte and body.
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	h, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, shift := 0, 0
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n |= int(b&0x7f) << shift
		if b < 0x80 {
			break
		}
		shift += 7
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return h, body, err
}

// connect5Packet is an MQTT 5 CONNECT with a clean start and no properties.
func connect5Packet(clientID string) []byte {
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 0}
	body = binary.BigEndian.AppendUint16(body, uint16(len(clientID)))
	body = append(body, clientID...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// publish5Packet is an MQTT 5 PUBLISH without properties, at QoS 1 with
// packet identifier id, or at QoS 0 when id is 0.
func publish5Packet(topic string, id uint16, payload string) []byte {
	var body []byte
	body = binary.BigEndian.AppendUint16(body, uint16(len(topic)))
	body = append(body, topic...)
	head := byte(0x30)
	if id != 0 {
		head = 0x32
		body = binary.BigEndian.AppendUint16(body, id)
	}
	body = append(body, 0) // property length
	body = append(body, payload...)
	return append([]byte{head, byte(len(body))}, body...)
}

// dialMQTT5 connects gw over MQTT 5 and returns the connection and its
// reader, past the CONNACK.
func (e *env) dialMQTT5(t *testing.T, l *leaf, id string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c := e.dialTLS(t, l)
	if _, err := c.Write(connect5Packet(id)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, body, err := readPacket(r)
	if err != nil || h != 0x20 || len(body) < 2 || body[1] != 0 {
		t.Fatalf("CONNACK: % x % x, %v", h, body, err)
	}
	return c, r
}

// limitedEnv is a broker whose gateways may publish burst messages and
// then next to nothing (one every 1,000 s).
func limitedEnv(t *testing.T, burst int, edit func(*Options)) *env {
	return newEnv(t, func(o *Options) {
		o.PublishRate, o.PublishBurst = 0.001, burst
		if edit != nil {
			edit(o)
		}
	})
}

// TestRateLimitMQTT3Disconnects: a Go MQTT 3.1.1 client over real TLS
// gets its burst stored and acknowledged, and is disconnected at the next
// publish, which is neither stored nor acknowledged; reconnecting does not
// refill its bucket.
func TestRateLimitMQTT3Disconnects(t *testing.T) {
	e := limitedEnv(t, 3, nil)
	gw := e.gateway(t, "GW0200")
	lost := make(chan error, 1)
	opts := e.pahoOptions(gw, "GW0200").SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	c := e.connect(t, opts)
	for i := range 3 {
		tok := c.Publish("gw/GW0200/telemetry", 1, false, []byte{'a' + byte(i)})
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d of the burst: no PUBACK (err %v)", i+1, tok.Error())
		}
	}
	over := c.Publish("gw/GW0200/telemetry", 1, false, "over")
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("client not disconnected after going over its rate")
	}
	if over.WaitTimeout(100*time.Millisecond) && over.Error() == nil {
		t.Fatal("publish over the limit acknowledged")
	}
	if n := len(e.sink.messages()); n != 3 {
		t.Fatalf("sink holds %d messages; want the burst, 3", n)
	}
	if _, ok := e.sink.find("gw/GW0200/telemetry", []byte("over")); ok {
		t.Fatal("publish over the limit stored")
	}

	// Reconnecting: the same (empty) bucket; the first publish is refused.
	c2 := e.connect(t, e.pahoOptions(gw, "GW0200").SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err }))
	again := c2.Publish("gw/GW0200/telemetry", 1, false, "again")
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("reconnected client not disconnected: reconnecting refilled its bucket")
	}
	if again.WaitTimeout(100*time.Millisecond) && again.Error() == nil {
		t.Fatal("publish after reconnecting acknowledged")
	}
	if n := len(e.sink.messages()); n != 3 {
		t.Fatalf("sink holds %d messages; want 3", n)
	}
	if got := e.broker.PublishLimited(); got != 2 {
		t.Errorf("PublishLimited = %d; want 2", got)
	}
	logs := e.logs()
	if n := strings.Count(logs, "publish rate limit"); n != 1 {
		t.Errorf("%d log lines about the rate limit; want 1 (at most one per %v):\n%s", n, limitLogInterval, logs)
	}
	if !strings.Contains(logs, "action=disconnected") {
		t.Errorf("refusal log does not say the client was disconnected:\n%s", logs)
	}
}

// TestRateLimitMQTT3AcksEarlierFirst: the disconnection of an MQTT 3.1.1
// client over its rate waits for the PUBACKs of its earlier messages, and
// nothing it sends after the refused message is stored.
func TestRateLimitMQTT3AcksEarlierFirst(t *testing.T) {
	sink := &gateSink{gates: map[string]chan struct{}{"one": make(chan struct{})}}
	e := limitedEnv(t, 2, func(o *Options) { o.Sink = sink })
	gw := e.gateway(t, "GW0201")
	c := e.dialTLS(t, gw)
	if _, err := c.Write(connectPacket("GW0201", 30)); err != nil {
		t.Fatal(err)
	}
	if code := readConnack(t, c); code != 0 {
		t.Fatalf("CONNACK code %d", code)
	}
	for i, p := range []string{"one", "two", "three", "four"} {
		if _, err := c.Write(publishPacket("gw/GW0201/telemetry", uint16(i+1), p)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "the broker refused three", func() bool { return e.broker.PublishLimited() >= 1 })
	time.Sleep(200 * time.Millisecond) // "four" read and dropped too
	close(sink.gates["one"])
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [4]byte
	for want := uint16(1); want <= 2; want++ {
		if _, err := io.ReadFull(c, b[:]); err != nil {
			t.Fatalf("read PUBACK %d: %v", want, err)
		}
		if b[0] != 0x40 || b[1] != 2 || binary.BigEndian.Uint16(b[2:]) != want {
			t.Fatalf("got % x; want PUBACK %d", b, want)
		}
	}
	if closed, _ := closedWithin(c, 5*time.Second); !closed {
		t.Fatal("connection not closed after the publish over the limit")
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if got := slices.Sorted(slices.Values(sink.got)); !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("stored %q; want one and two only", got)
	}
}

// TestRateLimitMQTT5QuotaExceeded: an MQTT 5 client gets PUBACK 0x97 for
// each QoS 1 publish over its rate, in order after the PUBACKs of its
// earlier messages even while they are still being stored; QoS 0 publishes
// over the rate are dropped; the connection stays up; nothing over the
// limit is stored.
func TestRateLimitMQTT5QuotaExceeded(t *testing.T) {
	sink := &gateSink{gates: map[string]chan struct{}{"one": make(chan struct{})}}
	e := limitedEnv(t, 3, func(o *Options) { o.Sink = sink })
	gw := e.gateway(t, "GW0202")
	c, r := e.dialMQTT5(t, gw, "GW0202")
	pubs := []struct {
		id      uint16
		payload string
	}{{1, "one"}, {2, "two"}, {0, "three-qos0"}, {0, "four-qos0"}, {3, "five"}, {4, "six"}}
	for _, p := range pubs {
		if _, err := c.Write(publish5Packet("gw/GW0202/telemetry", p.id, p.payload)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "three publishes refused", func() bool { return e.broker.PublishLimited() == 3 })
	// "one" is still being stored: nothing may be acknowledged yet, not
	// even the refusals.
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if h, body, err := readPacket(r); err == nil {
		t.Fatalf("got % x % x while the first message was being stored; want nothing", h, body)
	}
	close(sink.gates["one"])
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	want := []struct {
		id   uint16
		code byte
	}{{1, 0}, {2, 0}, {3, 0x97}, {4, 0x97}}
	r = bufio.NewReader(c) // the timed-out read left nothing buffered
	for _, w := range want {
		h, body, err := readPacket(r)
		if err != nil {
			t.Fatalf("read PUBACK %d: %v", w.id, err)
		}
		code := byte(0)
		if len(body) > 2 {
			code = body[2]
		}
		if h != 0x40 || len(body) < 2 || binary.BigEndian.Uint16(body) != w.id || code != w.code {
			t.Fatalf("got % x % x; want PUBACK %d with reason code %#x", h, body, w.id, w.code)
		}
	}
	// Still connected: a PINGREQ is answered.
	if _, err := c.Write([]byte{0xc0, 0}); err != nil {
		t.Fatal(err)
	}
	if h, _, err := readPacket(r); err != nil || h != 0xd0 {
		t.Fatalf("PINGRESP: % x, %v; want the connection up", h, err)
	}
	sink.mu.Lock()
	got := slices.Sorted(slices.Values(sink.got))
	sink.mu.Unlock()
	if want := []string{"one", "three-qos0", "two"}; !slices.Equal(got, want) {
		t.Fatalf("stored %q; want %q only", got, want)
	}
	// One line for three refusals: the first (the QoS 0 one, dropped).
	if n := strings.Count(e.logs(), "publish rate limit"); n != 1 || !strings.Contains(e.logs(), "action=dropped") {
		t.Errorf("%d refusal lines; want 1, saying dropped:\n%s", n, e.logs())
	}
}

func TestNewRefusesBadPublishLimits(t *testing.T) {
	valid := func() Options {
		return Options{
			Addr:         "127.0.0.1:0",
			TLSConfig:    &tls.Config{Certificates: []tls.Certificate{{}}, ClientCAs: x509.NewCertPool()},
			Authenticate: newAuthority().Authenticate,
			Sink:         &memSink{},
			PublishRate:  0.5,
			PublishBurst: 1,
		}
	}
	b, err := New(valid())
	if err != nil {
		t.Fatalf("New with rate 0.5, burst 1: %v", err)
	}
	b.Close()
	for _, bad := range []struct {
		rate  float64
		burst int
	}{{-1, 0}, {MaxPublishRate + 1, 0}, {math.NaN(), 0}, {0, -1}, {0, MaxPublishBurst + 1}} {
		o := valid()
		o.PublishRate, o.PublishBurst = bad.rate, bad.burst
		if b, err := New(o); err == nil {
			b.Close()
			t.Errorf("New accepted rate %v, burst %d", o.PublishRate, o.PublishBurst)
		}
	}
}
