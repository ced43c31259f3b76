package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/gwpki/gwpki/claim"
)

// AgentOptions are the agent's settings; every zero value means the
// default.
type AgentOptions struct {
	// Interval between telemetry messages; zero means 5 s.
	Interval time.Duration
	// Console is the gateway's display: the claim code, "claimed", what
	// happened to the connection. Each line is one Write and starts with
	// the serial. Nil means io.Discard.
	Console io.Writer
	// Logger gets details for debugging; nil discards them.
	Logger *slog.Logger
	// HTTPTimeout bounds each bootstrap, renewal and button request; zero
	// means 30 s.
	HTTPTimeout time.Duration
	// ConnectTimeout bounds the TLS handshake and MQTT CONNECT; zero means
	// 30 s.
	ConnectTimeout time.Duration
	// Now is the clock for the claim code and certificate lifetimes; nil
	// means time.Now.
	Now func() time.Time
}

// Status is a snapshot of an agent.
type Status struct {
	Serial    string
	Connected bool
	Claimed   bool
	// CertNotAfter is the operational certificate's expiry, zero before the
	// first bootstrap; RenewAfter is when the agent renews it.
	CertNotAfter, RenewAfter time.Time
	// Published counts telemetry messages sent, Acked those the broker
	// acknowledged (QoS 1 PUBACK).
	Published, Acked uint64
	// Bootstraps and Renewals count this agent's successful ones.
	Bootstraps, Renewals int
}

// Agent is one gateway's agent: see the package documentation. Run it
// once; PressButton and Status may be called from any goroutine.
type Agent struct {
	b       *Bundle
	opts    AgentOptions
	log     *slog.Logger
	consMu  sync.Mutex
	buttons chan struct{}
	cmds    chan command

	published, acked atomic.Uint64

	mu     sync.Mutex
	status Status

	// Owned by the Run goroutine.
	op             *operational
	sess           *session
	connectedAt    time.Time
	forceBootstrap bool
	claimed        bool
	lastCode       string
	seq            uint64
	pump           *pump
}

// session is one MQTT connection.
type session struct {
	client mqtt.Client
	lost   chan error
}

// command is a message the server sent on gw/<serial>/cmd/...
type command struct {
	name    string
	payload []byte
}

// NewAgent returns the agent of the gateway whose bundle is b.
func NewAgent(b *Bundle, opts AgentOptions) *Agent {
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.Console == nil {
		opts.Console = io.Discard
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HTTPTimeout <= 0 {
		opts.HTTPTimeout = 30 * time.Second
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := fnv.New64a()
	h.Write([]byte(b.Serial))
	return &Agent{
		b:       b,
		opts:    opts,
		log:     opts.Logger.With("serial", b.Serial),
		buttons: make(chan struct{}, 1),
		cmds:    make(chan command, 4),
		status:  Status{Serial: b.Serial},
		pump:    newPump(h.Sum64()),
	}
}

// Topics of the gateway.
func (a *Agent) topic(leaf string) string { return "gw/" + a.b.Serial + "/" + leaf }

// PressButton reports a press of the gateway's claim button: over the MQTT
// connection when there is one (gw/<serial>/state {"claim_button":"pressed"}),
// else over HTTPS with the birth certificate ([Bundle.PressClaimButton]).
// It does not wait; the console says what happened. Presses made while one
// is being reported count once.
func (a *Agent) PressButton() {
	select {
	case a.buttons <- struct{}{}:
	default:
	}
}

// Status returns a snapshot of the agent.
func (a *Agent) Status() Status {
	a.mu.Lock()
	s := a.status
	a.mu.Unlock()
	s.Published, s.Acked = a.published.Load(), a.acked.Load()
	return s
}

func (a *Agent) update(f func(s *Status)) {
	a.mu.Lock()
	f(&a.status)
	a.mu.Unlock()
}

// say prints one console line, starting with the serial.
func (a *Agent) say(format string, args ...any) {
	var buf bytes.Buffer
	buf.WriteString(a.b.Serial)
	buf.WriteByte(' ')
	fmt.Fprintf(&buf, format, args...)
	buf.WriteByte('\n')
	a.consMu.Lock()
	a.opts.Console.Write(buf.Bytes())
	a.consMu.Unlock()
}

// Run runs the gateway until ctx ends, then says goodbye to the broker
// ({"state":"offline"}) and returns nil. It returns an error at once only
// when the bundle cannot work at all (no birth certificate or key, no
// bootstrap URL); everything the network does is retried.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.b.Check(); err != nil {
		return err
	}
	now := a.opts.Now()
	if op, err := loadOperational(a.b.Dir); err == nil && now.Before(op.leaf.NotAfter) {
		a.setOperational(op)
		a.log.Info("using the operational certificate in the bundle", "not_after", op.leaf.NotAfter, "renew_after", op.state.RenewAfter)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.log.Warn("operational certificate in the bundle unusable; bootstrapping", "err", err)
	}
	a.showCode()

	tick := time.NewTicker(a.opts.Interval)
	defer tick.Stop()
	codeTimer := time.NewTimer(a.untilNextWindow())
	defer codeTimer.Stop()
	retry := time.NewTimer(0)
	defer retry.Stop()
	renewTimer := time.NewTimer(time.Hour)
	renewTimer.Stop()
	defer renewTimer.Stop()
	scheduleRenew := func() {
		renewTimer.Stop()
		if a.op != nil {
			renewTimer.Reset(max(0, a.op.state.RenewAfter.Sub(a.opts.Now())))
		}
	}
	scheduleRenew()
	attempt, renewAttempt := 0, 0
	lastTick := time.Now()

	for {
		var lost chan error
		if a.sess != nil {
			lost = a.sess.lost
		}
		select {
		case <-ctx.Done():
			a.disconnect()
			return nil

		case <-retry.C:
			before := a.op
			err := a.establish(ctx)
			if a.op != before {
				scheduleRenew()
			}
			if ctx.Err() != nil {
				continue
			}
			if err != nil {
				attempt++
				d := Backoff(attempt, rand.Float64())
				a.say("%v; retrying in %s", err, d.Round(time.Millisecond))
				retry.Reset(d)
			}

		case err := <-lost:
			a.sess.client.Disconnect(0)
			a.sess = nil
			a.update(func(s *Status) { s.Connected = false })
			// A connection that dies right after it was made counts as a
			// failed attempt, so a broker that keeps dropping the gateway
			// sees it back off.
			if time.Since(a.connectedAt) > 2*BackoffMax {
				attempt = 0
			}
			attempt++
			d := Backoff(attempt, rand.Float64())
			a.say("connection lost (%v); reconnecting in %s", err, d.Round(time.Millisecond))
			retry.Reset(d)

		case t := <-tick.C:
			a.publishTelemetry(t.Sub(lastTick))
			lastTick = t
			a.showCode()

		case <-codeTimer.C:
			a.showCode()
			codeTimer.Reset(a.untilNextWindow())

		case <-renewTimer.C:
			err := a.renewOrBootstrap(ctx)
			if ctx.Err() != nil {
				continue
			}
			if err != nil {
				renewAttempt++
				d := Backoff(renewAttempt, rand.Float64())
				a.say("%v; trying again in %s", err, d.Round(time.Millisecond))
				renewTimer.Reset(d)
				continue
			}
			renewAttempt = 0
			scheduleRenew()

		case <-a.buttons:
			a.pressButton(ctx)

		case c := <-a.cmds:
			a.handleCommand(c)
		}
	}
}

func (a *Agent) setOperational(op *operational) {
	a.op = op
	a.update(func(s *Status) { s.CertNotAfter, s.RenewAfter = op.leaf.NotAfter, op.state.RenewAfter })
}

// establish bootstraps when the gateway has no good certificate, then
// connects; when the broker refuses the certificate it bootstraps again
// with the birth certificate and connects with the new one.
func (a *Agent) establish(ctx context.Context) error {
	bootstrapped := false
	for {
		if a.op == nil || a.forceBootstrap || !a.opts.Now().Before(a.op.leaf.NotAfter) {
			if err := a.doBootstrap(ctx); err != nil {
				return err
			}
			bootstrapped = true
		}
		err := a.connect(ctx)
		if err == nil || !errors.Is(err, ErrCertificateRefused) {
			return err
		}
		a.forceBootstrap = true
		if bootstrapped {
			return err // a certificate fresh from the server, refused: back off
		}
		a.say("%v; bootstrapping again with the birth certificate", err)
	}
}

func (a *Agent) doBootstrap(ctx context.Context) error {
	refusedBefore := a.forceBootstrap
	op, err := a.bootstrap(ctx)
	if err != nil {
		if errors.Is(err, ErrRefused) {
			return fmt.Errorf("%w — the server will not give this gateway a certificate (revoked, decommissioned or not registered?)", err)
		}
		return err
	}
	a.setOperational(op)
	a.forceBootstrap = false
	a.update(func(s *Status) { s.Bootstraps++ })
	a.say("bootstrapped: operational certificate %X valid until %s, broker %s",
		op.leaf.SerialNumber, op.leaf.NotAfter.Format(time.RFC3339), op.state.MQTT.URL)
	if refusedBefore && a.claimed {
		// The old certificate was refused: revoked, as unclaiming does.
		// The gateway shows its code again until the server says otherwise.
		a.claimed = false
		a.lastCode = ""
		a.update(func(s *Status) { s.Claimed = false })
		a.showCode()
	}
	return nil
}

// renewOrBootstrap renews the operational certificate, or bootstraps anew
// when the server refuses the renewal or the certificate has expired.
func (a *Agent) renewOrBootstrap(ctx context.Context) error {
	if a.op == nil {
		return nil
	}
	if !a.opts.Now().Before(a.op.leaf.NotAfter) {
		a.say("operational certificate expired; bootstrapping again")
		return a.doBootstrap(ctx)
	}
	op, err := a.renew(ctx, a.op)
	if errors.Is(err, ErrRefused) {
		a.say("%v; bootstrapping again with the birth certificate", err)
		return a.doBootstrap(ctx)
	}
	if err != nil {
		return err
	}
	a.setOperational(op)
	a.update(func(s *Status) { s.Renewals++ })
	a.say("renewed: operational certificate %X valid until %s", op.leaf.SerialNumber, op.leaf.NotAfter.Format(time.RFC3339))
	return nil
}

// brokerURL turns the bootstrap answer's mqtts://host:port into paho's
// tls://host:port.
func brokerURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("MQTT URL %q is not mqtts://host:port", s)
	}
	switch u.Scheme {
	case "mqtts", "tls", "ssl":
	default:
		return "", fmt.Errorf("MQTT URL %q is not mqtts://host:port", s)
	}
	return "tls://" + u.Host, nil
}

var (
	stateOnline  = []byte(`{"state":"online"}`)
	stateOffline = []byte(`{"state":"offline"}`)
	statePressed = []byte(`{"claim_button":"pressed"}`)
)

// connect opens the MQTT connection with the operational certificate,
// subscribes to the gateway's commands and says it is online.
func (a *Agent) connect(ctx context.Context) error {
	op := a.op
	broker, err := brokerURL(op.state.MQTT.URL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	roots, err := a.b.Roots()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	lost := make(chan error, 1)
	opts := mqtt.NewClientOptions().
		AddBroker(broker).
		SetClientID(op.state.MQTT.ClientID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetKeepAlive(30*time.Second).
		SetPingTimeout(10*time.Second).
		SetTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, Certificates: []tls.Certificate{op.cert}}).
		SetBinaryWill(a.topic("state"), stateOffline, 1, false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(a.opts.ConnectTimeout).
		SetWriteTimeout(a.opts.ConnectTimeout).
		SetOrderMatters(false).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	client := mqtt.NewClient(opts)
	if err := wait(ctx, client.Connect(), a.opts.ConnectTimeout+time.Second); err != nil {
		client.Disconnect(0)
		if certificateRefused(err) {
			return fmt.Errorf("connect to %s: %w: %v", op.state.MQTT.URL, ErrCertificateRefused, err)
		}
		return fmt.Errorf("connect to %s: %w", op.state.MQTT.URL, err)
	}
	sub := client.Subscribe(a.topic("cmd/#"), 1, func(_ mqtt.Client, m mqtt.Message) {
		name := strings.TrimPrefix(m.Topic(), a.topic("cmd/"))
		select {
		case a.cmds <- command{name: name, payload: m.Payload()}:
		case <-ctx.Done():
		}
	})
	if err := wait(ctx, sub, a.opts.ConnectTimeout); err != nil {
		client.Disconnect(0)
		return fmt.Errorf("subscribe to %s: %w", a.topic("cmd/#"), err)
	}
	if qos, ok := sub.(*mqtt.SubscribeToken).Result()[a.topic("cmd/#")]; !ok || qos == 0x80 {
		client.Disconnect(0)
		return fmt.Errorf("subscribe to %s: refused by the broker", a.topic("cmd/#"))
	}
	if err := wait(ctx, client.Publish(a.topic("state"), 1, false, stateOnline), a.opts.ConnectTimeout); err != nil {
		client.Disconnect(0)
		return fmt.Errorf("publish online state: %w", err)
	}
	a.sess = &session{client: client, lost: lost}
	a.connectedAt = time.Now()
	a.update(func(s *Status) { s.Connected = true })
	a.say("connected to %s with certificate %X", op.state.MQTT.URL, op.leaf.SerialNumber)
	return nil
}

// wait waits for an MQTT token, ctx or the timeout.
func wait(ctx context.Context, t mqtt.Token, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return errors.New("timed out")
	}
}

// certAlerts are the TLS alerts with which a server refuses a client
// certificate.
var certAlerts = map[string]bool{
	"tls: bad certificate": true, "tls: unsupported certificate": true, "tls: revoked certificate": true,
	"tls: expired certificate": true, "tls: unknown certificate": true, "tls: unknown certificate authority": true,
	"tls: certificate required": true, "tls: access denied": true,
}

// certificateRefused reports whether a connection attempt failed because
// the broker refused the gateway's certificate.
func certificateRefused(err error) bool {
	if errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error" && op.Err != nil && certAlerts[op.Err.Error()]
}

// disconnect says goodbye: the will covers losing the connection, this
// covers being stopped.
func (a *Agent) disconnect() {
	if a.sess == nil {
		return
	}
	c := a.sess.client
	t := c.Publish(a.topic("state"), 1, false, stateOffline)
	t.WaitTimeout(2 * time.Second)
	c.Disconnect(250)
	a.sess = nil
	a.update(func(s *Status) { s.Connected = false })
}

// publishTelemetry advances the pump by dt and, when connected, publishes
// its readings.
func (a *Agent) publishTelemetry(dt time.Duration) {
	if a.sess == nil {
		a.pump.step(dt, a.opts.Now(), 0)
		return
	}
	a.seq++
	msg := a.pump.step(dt, a.opts.Now(), a.seq)
	data, _ := json.Marshal(msg)
	t := a.sess.client.Publish(a.topic("telemetry"), 1, false, data)
	a.published.Add(1)
	go func() {
		<-t.Done()
		if t.Error() == nil {
			a.acked.Add(1)
		}
	}()
}

// showCode prints the display code while the gateway is unclaimed, when it
// differs from the last one printed.
func (a *Agent) showCode() {
	if a.claimed {
		return
	}
	now := a.opts.Now()
	code := a.b.DisplayCode(now)
	if code == a.lastCode {
		return
	}
	a.lastCode = code
	// The server takes the code in its window and the next.
	validUntil := now.Truncate(claim.DisplayWindow).Add(2 * claim.DisplayWindow)
	a.say("claim code: %s (valid until %s)", code, validUntil.Local().Format("15:04"))
}

func (a *Agent) untilNextWindow() time.Duration {
	now := a.opts.Now()
	return now.Truncate(claim.DisplayWindow).Add(claim.DisplayWindow).Sub(now) + 10*time.Millisecond
}

func (a *Agent) handleCommand(c command) {
	switch c.name {
	case "claimed":
		if len(c.payload) == 0 { // a retained message cleared
			return
		}
		if !a.claimed {
			a.claimed = true
			a.update(func(s *Status) { s.Claimed = true })
			a.say("claimed")
		}
	default:
		a.log.Info("command received", "command", c.name, "bytes", len(c.payload))
		a.say("command %q received (%d bytes)", c.name, len(c.payload))
	}
}

// pressButton reports a button press without holding up the agent.
func (a *Agent) pressButton(ctx context.Context) {
	a.say("claim button pressed")
	if a.sess != nil {
		t := a.sess.client.Publish(a.topic("state"), 1, false, statePressed)
		go func() {
			err := wait(ctx, t, a.opts.ConnectTimeout)
			if err == nil {
				a.say("claim button reported over MQTT")
				return
			}
			a.say("claim button: MQTT publish failed (%v); reporting over HTTPS", err)
			a.pressOverHTTPS(ctx)
		}()
		return
	}
	go func() {
		a.say("claim button: not connected to the broker; reporting over HTTPS")
		a.pressOverHTTPS(ctx)
	}()
}

func (a *Agent) pressOverHTTPS(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, a.opts.HTTPTimeout)
	defer cancel()
	res, err := a.b.PressClaimButton(ctx)
	if err != nil {
		a.say("claim button: %v", err)
		return
	}
	state := "was not locked"
	if res.WasLocked {
		state = "was locked"
	}
	a.say("claim button reported over HTTPS: the claim lock %s; %d failed attempt(s) cleared", state, res.Failures)
}
