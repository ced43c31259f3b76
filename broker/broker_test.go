package broker

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// connectPacket is an MQTT 3.1.1 CONNECT with a clean session.
func connectPacket(clientID string, keepalive uint16) []byte {
	var body bytes.Buffer
	body.Write([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02})
	binary.Write(&body, binary.BigEndian, keepalive)
	binary.Write(&body, binary.BigEndian, uint16(len(clientID)))
	body.WriteString(clientID)
	return append([]byte{0x10, byte(body.Len())}, body.Bytes()...)
}

// readConnack reads a CONNACK and returns its return code.
func readConnack(tb testing.TB, c net.Conn) byte {
	tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [4]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		tb.Fatalf("read CONNACK: %v", err)
	}
	if b[0] != 0x20 || b[1] != 2 {
		tb.Fatalf("got packet % x; want a CONNACK", b)
	}
	return b[3]
}

// closedWithin reports whether the peer closes c within d (a read returns
// EOF or a reset rather than timing out) and how long it took.
func closedWithin(c net.Conn, d time.Duration) (bool, time.Duration) {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(d))
	buf := make([]byte, 256)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false, time.Since(start)
		}
		return true, time.Since(start)
	}
}

func TestPublishStoredAndAcked(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW0001")
	c := e.connect(t, e.pahoOptions(gw, "GW0001"))
	payload := []byte(`{"temp":21.5}`)
	tok := c.Publish("gw/GW0001/telemetry/pump", 1, false, payload)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: no PUBACK (err %v)", tok.Error())
	}
	m, ok := e.sink.find("gw/GW0001/telemetry/pump", payload)
	if !ok {
		t.Fatalf("sink holds %v; want the publish", e.sink.messages())
	}
	if m.Gateway != "GW0001" || m.Time.Location() != time.UTC || time.Since(m.Time) > time.Minute {
		t.Errorf("stored %+v; want gateway GW0001 and a recent UTC time", m)
	}
	if !e.broker.Online("GW0001") || e.broker.Clients() != 1 {
		t.Errorf("Online = %v, Clients = %d; want true, 1", e.broker.Online("GW0001"), e.broker.Clients())
	}
	if strings.Contains(e.logs(), "21.5") {
		t.Errorf("log contains the payload:\n%s", e.logs())
	}
}

func TestPubackOnlyAfterAppendReturned(t *testing.T) {
	e := newEnv(t, nil)
	e.sink.block = make(chan struct{})
	e.sink.entered = make(chan struct{}, 1)
	gw := e.gateway(t, "GW0002")
	c := e.connect(t, e.pahoOptions(gw, "GW0002"))
	tok := c.Publish("gw/GW0002/state", 1, false, `{"state":"online"}`)
	select {
	case <-e.sink.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("Append was not called")
	}
	// Append is blocked: no PUBACK may arrive meanwhile.
	if tok.WaitTimeout(300 * time.Millisecond) {
		t.Fatalf("PUBACK arrived while Append was blocked (err %v)", tok.Error())
	}
	close(e.sink.block)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("no PUBACK after Append returned (err %v)", tok.Error())
	}
	if _, ok := e.sink.find("gw/GW0002/state", []byte(`{"state":"online"}`)); !ok {
		t.Error("state message not stored")
	}
}

func TestFailingSinkGetsNoPuback(t *testing.T) {
	e := newEnv(t, nil)
	e.sink.fail.Store(true)
	gw := e.gateway(t, "GW0003")
	lost := make(chan error, 1)
	c := e.connect(t, e.pahoOptions(gw, "GW0003").SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err }))
	tok := c.Publish("gw/GW0003/telemetry", 1, false, "x")
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("client not disconnected after the store failed")
	}
	if tok.WaitTimeout(100*time.Millisecond) && tok.Error() == nil {
		t.Fatal("publish acknowledged although the store failed")
	}
	if n := len(e.sink.messages()); n != 0 {
		t.Errorf("sink holds %d messages; want 0", n)
	}
	if !strings.Contains(e.logs(), "store failed") {
		t.Errorf("no refusal logged:\n%s", e.logs())
	}
}

func TestPublishToAnotherGatewayDenied(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW0004")
	e.gateway(t, "GW0005")
	c := e.connect(t, e.pahoOptions(gw, "GW0004"))
	for _, topic := range []string{"gw/GW0005/telemetry", "gw/GW0004/cmd/claimed", "gw/GW0004/other"} {
		// QoS 0: mochi drops it silently; the sink must not see it.
		c.Publish(topic, 0, false, "spoof").WaitTimeout(5 * time.Second)
	}
	// A QoS 1 publish on the gateway's own topic after them proves the
	// QoS 0 ones were processed (one read loop per client).
	if tok := c.Publish("gw/GW0004/telemetry", 1, false, "own"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("own publish: %v", tok.Error())
	}
	for _, m := range e.sink.messages() {
		if string(m.Payload) == "spoof" {
			t.Errorf("stored a publish to %s", m.Topic)
		}
	}
	if !strings.Contains(e.logs(), "mqtt publish refused") || !strings.Contains(e.logs(), "GW0005") {
		t.Errorf("refusal not logged:\n%s", e.logs())
	}
	if strings.Contains(e.logs(), "spoof") {
		t.Errorf("log contains a payload:\n%s", e.logs())
	}
}

func TestDisconnectCertificatesDropsWithinASecond(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW0006")
	other := e.gateway(t, "GW0007")
	lost := make(chan struct{}, 1)
	e.connect(t, e.pahoOptions(gw, "GW0006").
		SetWill("gw/GW0006/state", `{"state":"offline"}`, 1, false).
		SetConnectionLostHandler(func(paho.Client, error) { lost <- struct{}{} }))
	e.connect(t, e.pahoOptions(other, "GW0007"))
	eventually(t, 5*time.Second, "both online", func() bool { return e.broker.Clients() == 2 })

	start := time.Now()
	e.auth.revoke(gw)
	if n := e.broker.DisconnectCertificates([]string{gw.Serial, "999999"}); n != 1 {
		t.Errorf("DisconnectCertificates = %d; want 1", n)
	}
	select {
	case <-lost:
	case <-time.After(time.Second):
		t.Fatal("session not dropped within 1s")
	}
	eventually(t, time.Second-time.Since(start), "offline", func() bool { return !e.broker.Online("GW0006") })
	if !e.broker.Online("GW0007") {
		t.Error("another gateway's session was dropped")
	}
	eventually(t, 5*time.Second, "will stored", func() bool {
		_, ok := e.sink.find("gw/GW0006/state", []byte(`{"state":"offline"}`))
		return ok
	})
	// The revoked certificate cannot come back.
	c := paho.NewClient(e.pahoOptions(gw, "GW0006"))
	if tok := c.Connect(); tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
		c.Disconnect(0)
		t.Fatal("revoked certificate reconnected")
	}
}

func TestNotifyClaimedReachesSubscriber(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW0008")
	c := e.connect(t, e.pahoOptions(gw, "GW0008"))
	got := make(chan paho.Message, 4)
	tok := c.Subscribe("gw/GW0008/cmd/#", 1, func(_ paho.Client, m paho.Message) { got <- m })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	if code := tok.(*paho.SubscribeToken).Result()["gw/GW0008/cmd/#"]; code != 1 {
		t.Fatalf("SUBACK code %#x; want 1", code)
	}
	e.broker.NotifyClaimed("GW0008")
	select {
	case m := <-got:
		if m.Topic() != "gw/GW0008/cmd/claimed" || string(m.Payload()) != `{"claimed":true}` || m.Qos() != 1 {
			t.Errorf("got %s %s qos %d; want gw/GW0008/cmd/claimed {\"claimed\":true} qos 1", m.Topic(), m.Payload(), m.Qos())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("claimed notification not received")
	}
}

func TestSubscribeTellsClaimedGateway(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW0009")
	e.claimed.Store("GW0009", true)
	c := e.connect(t, e.pahoOptions(gw, "GW0009"))
	got := make(chan paho.Message, 4)
	if tok := c.Subscribe("gw/GW0009/cmd/claimed", 1, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("subscribe timed out")
	}
	select {
	case m := <-got:
		if string(m.Payload()) != `{"claimed":true}` {
			t.Errorf("got payload %s", m.Payload())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("claimed gateway not told on subscribe")
	}
}

func TestSubscribeRefusedOutsideOwnCmd(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW0010")
	c := e.connect(t, e.pahoOptions(gw, "GW0010"))
	for _, filter := range []string{"gw/GW0011/cmd/#", "gw/+/cmd/#", "gw/GW0010/#", "#", "gw/GW0010/telemetry", "$SYS/#"} {
		tok := c.Subscribe(filter, 1, nil)
		if !tok.WaitTimeout(5 * time.Second) {
			t.Fatalf("subscribe %q timed out", filter)
		}
		if code := tok.(*paho.SubscribeToken).Result()[filter]; code != 0x80 {
			t.Errorf("subscribe %q: SUBACK code %#x; want 0x80", filter, code)
		}
	}
}

func TestClaimButton(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW0012")
	c := e.connect(t, e.pahoOptions(gw, "GW0012"))
	if tok := c.Publish("gw/GW0012/state", 1, false, `{"claim_button":"pressed"}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case got := <-e.pressed:
		if got != "GW0012" {
			t.Errorf("OnClaimButton(%q); want GW0012", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnClaimButton not called")
	}
	// The same payload on telemetry is data, not a button press.
	if tok := c.Publish("gw/GW0012/telemetry", 1, false, `{"claim_button":"pressed"}`); !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("publish timed out")
	}
	select {
	case <-e.pressed:
		t.Error("telemetry payload taken as a claim button press")
	default:
	}
}

func TestOversizePacketRefused(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxPacketSize = 1024 })
	gw := e.gateway(t, "GW0013")
	lost := make(chan struct{}, 1)
	c := e.connect(t, e.pahoOptions(gw, "GW0013").SetConnectionLostHandler(func(paho.Client, error) { lost <- struct{}{} }))
	tok := c.Publish("gw/GW0013/telemetry", 1, false, bytes.Repeat([]byte("a"), 2048))
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("oversize publish did not close the connection")
	}
	if tok.WaitTimeout(100*time.Millisecond) && tok.Error() == nil {
		t.Error("oversize publish acknowledged")
	}
	if n := len(e.sink.messages()); n != 0 {
		t.Errorf("sink holds %d messages; want 0", n)
	}
}

func TestMaxClients(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxClients = 1 })
	a := e.gateway(t, "GW0014")
	b := e.gateway(t, "GW0015")
	e.connect(t, e.pahoOptions(a, "GW0014"))
	conn := e.dialTLS(t, b)
	if _, err := conn.Write(connectPacket("GW0015", 30)); err != nil {
		t.Fatal(err)
	}
	if code := readConnack(t, conn); code != 0x03 {
		t.Errorf("CONNACK code %#x beyond MaxClients; want 0x03 (server unavailable)", code)
	}
	if e.broker.Online("GW0015") || e.broker.Clients() != 1 {
		t.Errorf("Clients = %d; want 1", e.broker.Clients())
	}
}

func TestClientIDMustBeSerial(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW0016")
	e.gateway(t, "GW0017")
	for _, id := range []string{"GW0017", "", "gw0016"} {
		conn := e.dialTLS(t, gw)
		if _, err := conn.Write(connectPacket(id, 30)); err != nil {
			t.Fatal(err)
		}
		if code := readConnack(t, conn); code != 0x02 {
			t.Errorf("client id %q: CONNACK code %#x; want 0x02 (identifier rejected)", id, code)
		}
	}
	if e.broker.Clients() != 0 {
		t.Errorf("Clients = %d; want 0", e.broker.Clients())
	}
}

func TestWillOnForeignTopicRefused(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW0018")
	c := paho.NewClient(e.pahoOptions(gw, "GW0018").SetWill("gw/GW0019/cmd/claimed", `{"claimed":true}`, 1, false))
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatal("connect timed out")
	}
	if tok.Error() == nil {
		c.Disconnect(0)
		t.Fatal("connected with a will addressed to another gateway's cmd topic")
	}
}

func TestHandshakeRefusals(t *testing.T) {
	e := newEnv(t, nil)
	birth := issue(t, e.ca, "GW0020", false) // not listed as operational
	revoked := e.gateway(t, "GW0021")
	e.auth.revoke(revoked)
	foreign := issue(t, newEnv(t, nil).ca, "GW0022", false)
	e.auth.allow(foreign) // even if the serial were known, the chain is not ours
	for name, l := range map[string]*leaf{"birth": birth, "revoked": revoked, "foreign CA": foreign, "no certificate": nil} {
		t.Run(name, func(t *testing.T) {
			c, err := tls.Dial("tcp", e.broker.Addr().String(), e.clientTLS(l))
			if err == nil {
				// TLS 1.3: the client finishes before the server checks its
				// certificate; the refusal arrives on the first read.
				defer c.Close()
				c.Write(connectPacket("GW", 30))
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err = c.Read(make([]byte, 1))
			}
			if err == nil {
				t.Fatal("handshake accepted")
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("no refusal, read timed out: %v", err)
			}
		})
	}
	if !e.auth.asked(birth.Serial) || !e.auth.asked(revoked.Serial) {
		t.Error("Authenticate not consulted at the handshake")
	}
	if e.auth.asked(foreign.Serial) {
		t.Error("Authenticate asked about a certificate from another CA")
	}
	if e.broker.Clients() != 0 {
		t.Errorf("Clients = %d; want 0", e.broker.Clients())
	}
}

func TestTLSVersionBelow12Refused(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW0023")
	cfg := e.clientTLS(gw)
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	c, err := tls.Dial("tcp", e.broker.Addr().String(), cfg)
	if err == nil {
		c.Close()
		t.Fatal("TLS 1.1 handshake accepted")
	}
}

func TestHandshakeDeadline(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.HandshakeTimeout = 200 * time.Millisecond })
	c, err := net.Dial("tcp", e.broker.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closed, after := closedWithin(c, 5*time.Second)
	if !closed {
		t.Fatal("silent TCP connection not closed within 5s")
	}
	if after < 150*time.Millisecond {
		t.Errorf("closed after %v; want about the 200ms deadline", after)
	}
}

func TestConnectDeadlineThenKeepalive(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ConnectTimeout = 200 * time.Millisecond })
	gw := e.gateway(t, "GW0024")

	// Handshake, then no CONNECT: closed after ConnectTimeout.
	silent := e.dialTLS(t, gw)
	if err := silent.Handshake(); err != nil {
		t.Fatal(err)
	}
	if closed, _ := closedWithin(silent, 5*time.Second); !closed {
		t.Fatal("connection without CONNECT not closed within 5s")
	}

	// With CONNECT the deadline is cleared: idle well past it (keepalive 0
	// means no keep-alive deadline), the session is still alive.
	conn := e.dialTLS(t, gw)
	conn.Write(connectPacket("GW0024", 0))
	if code := readConnack(t, conn); code != 0 {
		t.Fatalf("CONNACK code %#x; want 0", code)
	}
	if closed, _ := closedWithin(conn, time.Second); closed {
		t.Fatal("connected session closed by the CONNECT deadline")
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	conn.Write([]byte{0xC0, 0}) // PINGREQ
	var resp [2]byte
	if _, err := io.ReadFull(conn, resp[:]); err != nil || resp != [2]byte{0xD0, 0} {
		t.Fatalf("PINGRESP: got % x, %v", resp, err)
	}
}

func TestMalformedPacketsCloseConnection(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW0025")
	cases := map[string]struct {
		connect bool
		bytes   []byte
	}{
		"garbage instead of CONNECT":      {false, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
		"publish before CONNECT":          {false, []byte{0x30, 0x05, 0, 1, 'a', 'b', 'c'}},
		"bad remaining length":            {true, []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}},
		"reserved packet type":            {true, []byte{0x00, 0x00}},
		"publish topic length past end":   {true, []byte{0x32, 0x04, 0xFF, 0xFF, 'a', 'b'}},
		"subscribe without filters":       {true, []byte{0x82, 0x02, 0x00, 0x01}},
		"second CONNECT":                  {true, connectPacket("GW0025", 30)},
		"publish with wildcard topic":     {true, append([]byte{0x32, 0x0A, 0, 6}, []byte("gw/#/x\x00\x01")...)},
		"connect with bad protocol level": {false, []byte{0x10, 0x0C, 0, 4, 'M', 'Q', 'T', 'T', 9, 2, 0, 30, 0, 0}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			conn := e.dialTLS(t, gw)
			if tc.connect {
				conn.Write(connectPacket("GW0025", 30))
				if code := readConnack(t, conn); code != 0 {
					t.Fatalf("CONNACK code %#x", code)
				}
			}
			conn.Write(tc.bytes)
			if closed, _ := closedWithin(conn, 5*time.Second); !closed {
				t.Fatal("connection not closed")
			}
		})
	}
	// The broker still serves.
	c := e.connect(t, e.pahoOptions(gw, "GW0025"))
	if tok := c.Publish("gw/GW0025/telemetry", 1, false, "ok"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish after malformed input: %v", tok.Error())
	}
}

func TestSessionTakeover(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW0026")
	lost := make(chan struct{}, 1)
	e.connect(t, e.pahoOptions(gw, "GW0026").SetConnectionLostHandler(func(paho.Client, error) { lost <- struct{}{} }))
	second := e.connect(t, e.pahoOptions(gw, "GW0026"))
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("first connection not taken over")
	}
	if !second.IsConnected() || !e.broker.Online("GW0026") {
		t.Fatalf("second connection not live: connected %v, online %v\n%s", second.IsConnected(), e.broker.Online("GW0026"), e.logs())
	}
	eventually(t, 5*time.Second, "one session", func() bool { return e.broker.Clients() == 1 })
}

func TestNewRefusesIncompleteOptions(t *testing.T) {
	ok := func() Options {
		return Options{
			Addr:         "127.0.0.1:0",
			TLSConfig:    &tls.Config{Certificates: []tls.Certificate{{}}, ClientCAs: nil},
			Authenticate: newAuthority().Authenticate,
			Sink:         &memSink{},
		}
	}
	cases := map[string]func(*Options){
		"no TLS":              func(o *Options) { o.TLSConfig = nil },
		"no client CAs":       func(o *Options) {},
		"no authenticate":     func(o *Options) { o.Authenticate = nil },
		"no sink":             func(o *Options) { o.Sink = nil },
		"negative max":        func(o *Options) { o.MaxClients = -1 },
		"receive max too big": func(o *Options) { o.ReceiveMaximum = 1 << 16 },
	}
	for name, edit := range cases {
		o := ok()
		edit(&o)
		if b, err := New(o); err == nil {
			b.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestCloseWhileAppendBlocked(t *testing.T) {
	e := newEnv(t, nil)
	e.sink.block = make(chan struct{}) // never released
	e.sink.entered = make(chan struct{}, 1)
	gw := e.gateway(t, "GW0028")
	c := e.connect(t, e.pahoOptions(gw, "GW0028"))
	tok := c.Publish("gw/GW0028/telemetry", 1, false, "x")
	select {
	case <-e.sink.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("Append was not called")
	}
	done := make(chan struct{})
	go func() { e.broker.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while Append was blocked")
	}
	if tok.WaitTimeout(100*time.Millisecond) && tok.Error() == nil {
		t.Error("publish acknowledged although Append was cancelled")
	}
}

func TestCloseEndsStart(t *testing.T) {
	e := newEnv(t, nil)
	gw := e.gateway(t, "GW0027")
	e.connect(t, e.pahoOptions(gw, "GW0027"))
	done := make(chan struct{})
	go func() { e.broker.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := e.broker.Start(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close = %v; want ErrClosed", err)
	}
}
