package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gwpki/gwpki/telemetry"
)

// Defaults for the zero values of [Options].
const (
	DefaultMaxClients       = 20000
	DefaultMaxPacketSize    = 64 << 10
	DefaultReceiveMaximum   = 64
	DefaultSessionExpiry    = time.Hour
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultConnectTimeout   = 10 * time.Second
	// DefaultPublishRate and DefaultPublishBurst are the per-gateway
	// publish limit: 200 messages a second sustained, bursts of 1000.
	// A gateway agent sends one message every few seconds; the benchmark
	// (bench/mqtt: 1,000 gateways, window 8) drives about 90 a second per
	// gateway on two cores, which this leaves alone with room to spare,
	// while one gateway can take at most a small share of what the store
	// commits (about 90,000 messages a second on the same machine).
	DefaultPublishRate  = 200
	DefaultPublishBurst = 1000
	// MaxPublishRate and MaxPublishBurst bound what may be configured.
	MaxPublishRate  = 1_000_000
	MaxPublishBurst = 1_000_000
)

// maxPendingWrites bounds the packets queued for one gateway (mochi's
// MaximumClientWritesPending, 8192 by default, is allocated up front as a
// channel per client: 64 KiB each, 1.3 GB for 20,000 gateways). A gateway
// only receives the server's occasional cmd/ messages.
const maxPendingWrites = 128

// Options configures a [Broker]. Zero values of the limits mean the
// defaults above.
type Options struct {
	// Addr is the TCP address to listen on, e.g. ":8883" or "127.0.0.1:0".
	Addr string
	// TLSConfig carries the server certificate (Certificates or
	// GetCertificate) and ClientCAs, the CAs that issue operational
	// certificates. The broker works on a clone and forces MinVersion TLS
	// 1.2, tls.RequireAndVerifyClientCert and a VerifyConnection that calls
	// Authenticate (after the caller's own VerifyConnection, if any), and
	// disables session tickets.
	// GetConfigForClient must be nil: it would bypass all of that.
	TLSConfig *tls.Config
	// Authenticate is the CA's check of a verified client certificate:
	// stored, not revoked, an operational certificate. It returns the
	// gateway serial, which must then be the MQTT client ID. It is called
	// during every TLS handshake.
	Authenticate func(leaf *x509.Certificate) (gateway string, err error)
	// Sink stores telemetry and state messages; a QoS 1 publish is
	// acknowledged only after Sink.Append returned nil.
	Sink telemetry.Sink
	// OnClaimButton is called when a gateway reports its claim button
	// ({"claim_button":"pressed"} on gw/<serial>/state). Optional.
	OnClaimButton func(ctx context.Context, gateway string) error
	// Claimed tells whether a gateway is claimed, so that a gateway that
	// subscribes to its cmd/ topics learns it at once. Optional.
	Claimed func(ctx context.Context, gateway string) (bool, error)
	// MaxClients bounds the connected gateways; CONNECTs beyond it are
	// refused with "server unavailable". TCP connections beyond twice the
	// bound, counting those still in the handshake, are closed at accept.
	// Default 20000.
	MaxClients int
	// MaxPacketSize bounds an MQTT packet in bytes; a bigger packet closes
	// the connection. Default 64 KiB.
	MaxPacketSize int
	// ReceiveMaximum bounds the QoS 1 and 2 messages in flight per client,
	// in both directions. Default 64.
	ReceiveMaximum int
	// SessionExpiry bounds how long a disconnected persistent session is
	// kept (in memory only). Default 1h.
	SessionExpiry time.Duration
	// HandshakeTimeout bounds the TLS handshake, ConnectTimeout the time
	// from the end of the handshake to a complete CONNECT packet. Default
	// 10s each.
	HandshakeTimeout, ConnectTimeout time.Duration
	// PublishRate is the messages a second each gateway may publish (QoS 0
	// and 1 alike; fractions allowed), PublishBurst how many it may send
	// at once above that rate: a token bucket per gateway, shared by its
	// connections and kept across reconnects until it is full again. A
	// publish over the limit is not stored: at QoS 0 it is dropped, at QoS
	// 1 an MQTT 5 client gets PUBACK 0x97 "quota exceeded" and an MQTT
	// 3.1.1 client is disconnected. Defaults 200 and 1000; there is no
	// "unlimited".
	PublishRate  float64
	PublishBurst int
	// Registerer, when set, gets the broker's metrics
	// (gwpki_mqtt_connected_gateways, gwpki_mqtt_connections_total,
	// gwpki_mqtt_messages_total, gwpki_mqtt_revocation_drops_total,
	// gwpki_mqtt_publish_limited_total).
	Registerer prometheus.Registerer
	// Logger receives the broker's log; refusals are logged at info or warn
	// with gateway, certificate serial and reason, never payloads. Default
	// slog.Default().
	Logger *slog.Logger
}

// Broker is gwpki's MQTT broker for gateways. Its methods are safe for
// concurrent use.
type Broker struct {
	opts   Options
	log    *slog.Logger
	tls    *tls.Config // forced settings; cloned per connection to add VerifyConnection
	server *mqtt.Server
	ln     *listener

	ctx    context.Context // ends at Close: aborts handshakes and Sink appends
	cancel context.CancelFunc
	wg     sync.WaitGroup // background notifications

	limits  *limiter      // the gateways' publish token buckets
	limited atomic.Uint64 // publishes refused by the rate limit
	metrics *metrics

	mu       sync.Mutex
	conns    map[*conn]struct{} // every connection past the certificate check
	sessions map[string]*conn   // gateway -> connection of its live session

	startOnce sync.Once
	closeOnce sync.Once
	closed    chan struct{}
}

// New checks opts, binds the listening socket (so [Broker.Addr] is known at
// once) and returns a broker that serves once [Broker.Start] is called.
func New(opts Options) (*Broker, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	cfg := opts.TLSConfig.Clone()
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	// Each connection gets its own clone (to carry its VerifyConnection), and
	// a clone of a config that never served a handshake makes its own ticket
	// keys: tickets could never be redeemed, so none are sent.
	cfg.SessionTicketsDisabled = true

	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		opts:     opts,
		log:      opts.Logger,
		tls:      cfg,
		ctx:      ctx,
		cancel:   cancel,
		conns:    make(map[*conn]struct{}),
		sessions: make(map[string]*conn),
		closed:   make(chan struct{}),
		limits:   newLimiter(opts.PublishRate, opts.PublishBurst),
	}
	b.metrics = newMetrics(b)
	if opts.Registerer != nil {
		if err := b.metrics.register(opts.Registerer); err != nil {
			cancel()
			return nil, err
		}
	}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClients = int64(opts.MaxClients)
	caps.MaximumPacketSize = uint32(opts.MaxPacketSize)
	caps.ReceiveMaximum = uint16(opts.ReceiveMaximum)
	caps.MaximumInflight = uint16(opts.ReceiveMaximum)
	// QoS 2 would need PUBREC/PUBREL bookkeeping the store does not keep;
	// a QoS 2 publish is taken as QoS 1 ([MQTT-3.2.2-9]).
	caps.MaximumQos = 1
	caps.MaximumSessionExpiryInterval = uint32(opts.SessionExpiry / time.Second)
	caps.MaximumClientWritesPending = maxPendingWrites
	// mochi resolves inbound topic aliases after its ACL check and keeps up
	// to TopicAliasMaximum of them per client; gateways need none (mochi
	// does not announce any in CONNACK, so a conforming client uses none).
	caps.TopicAliasMaximum = 0
	caps.SharedSubAvailable = 0
	b.server = mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(redactHandler{opts.Logger.Handler()}),
		InlineClient: true, // NotifyClaimed publishes through it
	})
	// Exactly one hook provides OnConnectAuthenticate and OnACLCheck: mochi
	// ORs the results of all hooks providing them (hooks.go,
	// Hooks.OnConnectAuthenticate and Hooks.OnACLCheck return true as soon
	// as any hook does), so a second permissive hook would open everything.
	if err := b.server.AddHook(&hook{}, b); err != nil {
		cancel()
		return nil, fmt.Errorf("add broker hook: %w", err)
	}
	ln, err := newListener(b, opts.Addr)
	if err != nil {
		cancel()
		return nil, err
	}
	b.ln = ln
	if err := b.server.AddListener(ln); err != nil {
		cancel()
		ln.ln.Close()
		return nil, fmt.Errorf("add listener: %w", err)
	}
	b.wg.Add(1)
	go b.sweepLoop()
	return b, nil
}

func (o *Options) setDefaults() error {
	switch {
	case o.TLSConfig == nil:
		return errors.New("broker: no TLS config")
	case len(o.TLSConfig.Certificates) == 0 && o.TLSConfig.GetCertificate == nil:
		return errors.New("broker: TLS config has no server certificate")
	case o.TLSConfig.ClientCAs == nil:
		return errors.New("broker: TLS config has no client CAs")
	case o.TLSConfig.GetConfigForClient != nil:
		return errors.New("broker: TLS config must not set GetConfigForClient")
	case o.Authenticate == nil:
		return errors.New("broker: no Authenticate function")
	case o.Sink == nil:
		return errors.New("broker: no telemetry sink")
	case o.MaxClients < 0, o.MaxPacketSize < 0, o.ReceiveMaximum < 0, o.SessionExpiry < 0,
		o.HandshakeTimeout < 0, o.ConnectTimeout < 0, o.PublishBurst < 0:
		return errors.New("broker: negative limit")
	case !(o.PublishRate >= 0 && o.PublishRate <= MaxPublishRate): // NaN too
		return fmt.Errorf("broker: publish rate %v not within 0 to %d a second", o.PublishRate, MaxPublishRate)
	case o.PublishBurst > MaxPublishBurst:
		return fmt.Errorf("broker: publish burst %d above %d", o.PublishBurst, MaxPublishBurst)
	case o.ReceiveMaximum > math.MaxUint16:
		return fmt.Errorf("broker: receive maximum %d above %d", o.ReceiveMaximum, math.MaxUint16)
	case o.MaxPacketSize > 268435455: // the largest MQTT remaining length
		return fmt.Errorf("broker: maximum packet size %d above the MQTT limit", o.MaxPacketSize)
	case o.SessionExpiry/time.Second > math.MaxUint32:
		return fmt.Errorf("broker: session expiry %v too long", o.SessionExpiry)
	}
	if o.MaxClients == 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.MaxPacketSize == 0 {
		o.MaxPacketSize = DefaultMaxPacketSize
	}
	if o.ReceiveMaximum == 0 {
		o.ReceiveMaximum = DefaultReceiveMaximum
	}
	if o.SessionExpiry == 0 {
		o.SessionExpiry = DefaultSessionExpiry
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.PublishRate == 0 {
		o.PublishRate = DefaultPublishRate
	}
	if o.PublishBurst == 0 {
		o.PublishBurst = DefaultPublishBurst
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Start serves MQTT until ctx ends or [Broker.Close] is called, then closes
// the broker and returns nil. It returns [ErrClosed] if the broker was
// already closed, and may be called once.
func (b *Broker) Start(ctx context.Context) error {
	err := ErrClosed
	b.startOnce.Do(func() {
		select {
		case <-b.closed:
			return
		default:
		}
		if err = b.server.Serve(); err != nil {
			err = fmt.Errorf("serve mqtt: %w", err)
			return
		}
		b.log.Info("mqtt broker listening", "addr", b.Addr().String())
		select {
		case <-ctx.Done():
		case <-b.closed:
		}
		err = b.Close()
	})
	return err
}

// Addr returns the address the broker listens on.
func (b *Broker) Addr() net.Addr { return b.ln.ln.Addr() }

// Close stops accepting connections, drops every client and waits for the
// broker's goroutines. Appends still running see their context cancelled.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		close(b.closed)
		b.cancel()
		// mochi's Server.Close closes the listener (listener.Close drops the
		// connections still in the handshake or before CONNECT), disconnects
		// every client and waits for their read loops.
		_ = b.server.Close()
		b.ln.wait()
		b.wg.Wait()
	})
	return nil
}

// DisconnectCertificates drops every connection that authenticated with one
// of the given certificate serials (decimal), whether its MQTT session is
// established or it is still between the handshake and CONNECT, and returns
// how many it dropped. It closes the sockets directly and does not wait for
// the peers, so it returns at once and is safe to call from an event
// subscriber; the gateways' wills are stored as their read loops end.
func (b *Broker) DisconnectCertificates(serials []string) int {
	if len(serials) == 0 {
		return 0
	}
	want := make(map[string]bool, len(serials))
	for _, s := range serials {
		want[s] = true
	}
	type victim struct {
		c                   *conn
		gateway, certSerial string
	}
	var hit []victim
	b.mu.Lock()
	for c := range b.conns {
		if want[c.certSerial] {
			hit = append(hit, victim{c, c.gateway, c.certSerial})
		}
	}
	b.mu.Unlock()
	n := 0
	for _, v := range hit {
		v.c.revoked.Store(true)
		_ = v.c.raw.Close()
		if v.gateway == "" {
			continue // still in the handshake: it fails now, nothing to count
		}
		n++
		b.metrics.revocationDrops.Inc()
		b.log.Warn("mqtt connection dropped", "gateway", v.gateway, "cert_serial", v.certSerial,
			"reason", "certificate revoked")
	}
	return n
}

// NotifyClaimed publishes {"claimed":true} on gw/<gateway>/cmd/claimed at
// QoS 1. A subscribed gateway gets it now; a gateway with a persistent
// session gets it when it reconnects (within the session expiry); any other
// gateway learns it when it next subscribes (see [Options.Claimed]).
func (b *Broker) NotifyClaimed(gateway string) {
	if !validSerial(gateway) {
		b.log.Warn("claimed notification not sent", "gateway", gateway, "reason", "invalid gateway serial")
		return
	}
	if err := b.server.Publish(claimedTopic(gateway), []byte(`{"claimed":true}`), false, 1); err != nil {
		b.log.Warn("claimed notification not sent", "gateway", gateway, "error", err)
	}
}

// Online reports whether gateway has a live MQTT session.
func (b *Broker) Online(gateway string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.sessions[gateway]
	return ok
}

// Clients returns the number of live gateway sessions.
func (b *Broker) Clients() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sessions)
}

// track registers c under its certificate serial; it is called before
// Authenticate, so that a revocation that lands between Authenticate and
// the end of the handshake still finds the connection.
func (b *Broker) track(c *conn) {
	b.mu.Lock()
	b.conns[c] = struct{}{}
	b.mu.Unlock()
}

// untrack forgets c once it is closed.
func (b *Broker) untrack(c *conn) {
	b.mu.Lock()
	delete(b.conns, c)
	if b.sessions[c.gateway] == c {
		delete(b.sessions, c.gateway)
	}
	k := c.bucket
	c.bucket = nil
	b.mu.Unlock()
	if k != nil {
		b.limits.release(k)
	}
}

// established records c as gateway's live session, replacing the one it
// took over.
func (b *Broker) established(c *conn) {
	b.mu.Lock()
	b.sessions[c.gateway] = c
	c.session = true
	if c.bucket == nil {
		c.bucket = b.limits.acquire(c.gateway, time.Now())
	}
	b.mu.Unlock()
	// A revocation that came between the handshake and now closed the
	// socket already; the read loop will end on its own.
}

// ended forgets c as a live session, unless a newer connection took over.
func (b *Broker) ended(c *conn) {
	b.mu.Lock()
	if b.sessions[c.gateway] == c {
		delete(b.sessions, c.gateway)
	}
	b.mu.Unlock()
}

// disconnect drops a client after a failed store or, for an MQTT 3 client,
// a publish over its rate: no PUBACK went out for that message, and an
// MQTT 3 client, which has no negative acknowledgement, must not keep
// sending on a connection where it would look as if nothing was wrong.
// An MQTT 5 client gets DISCONNECT with code; an MQTT 3 client has the
// connection closed (code is the cause mochi reports to OnDisconnect).
func (b *Broker) disconnect(cl *mqtt.Client, code packets.Code) {
	if cl.Properties.ProtocolVersion == 5 {
		_ = b.server.DisconnectClient(cl, code)
		return
	}
	cl.Stop(code)
}
