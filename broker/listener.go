package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// listenerID names the gateway listener inside mochi.
const listenerID = "gateways"

// conn is a gateway connection as mochi sees it (Client.Net.Conn): the TLS
// connection plus who it authenticated as. The hooks read the identity from
// here, never from anything the client sent.
type conn struct {
	*tls.Conn
	raw        net.Conn // the TCP connection under Conn; closing it drops the client at once
	certSerial string   // decimal serial of the client certificate
	gateway    string   // what Authenticate returned; empty until it succeeded
	revoked    atomic.Bool
	acks       *ackQueue   // the QoS 1 messages on their way to the store
	bucket     *bucket     // the gateway's publish rate limit, from its session's start
	cut        atomic.Bool // over the limit (MQTT 3.1.1): nothing more is stored
	session    bool        // its MQTT session was established; guarded by Broker.mu
}

// listener is a mochi listeners.Listener that does the TLS handshake itself,
// under a deadline, before mochi sees the connection, and then leaves
// ConnectTimeout for the CONNECT packet. (mochi's listeners.TCP uses
// tls.Listen, where the handshake happens inside mochi's first read with no
// deadline of its own.)
type listener struct {
	b       *Broker
	ln      net.Listener
	log     *slog.Logger
	open    atomic.Int64 // TCP connections accepted and not yet closed
	limit   int64        // beyond this many, new TCP connections are closed at once
	closing atomic.Bool
	addMu   sync.Mutex // orders wg.Add in Serve with setting closing
	wg      sync.WaitGroup
}

var _ listeners.Listener = (*listener)(nil)

func newListener(b *Broker, addr string) (*listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen mqtt: %w", err)
	}
	return &listener{b: b, ln: ln, limit: 2 * int64(b.opts.MaxClients), log: b.log}, nil
}

func (l *listener) ID() string       { return listenerID }
func (l *listener) Address() string  { return l.ln.Addr().String() }
func (l *listener) Protocol() string { return "tls" }

// Init is called by mochi's Server.AddListener; the socket is already bound.
func (l *listener) Init(*slog.Logger) error { return nil }

// Serve accepts connections until Close.
func (l *listener) Serve(establish listeners.EstablishFn) {
	var backoff time.Duration
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			if l.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("mqtt accept", "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if l.open.Add(1) > l.limit {
			l.open.Add(-1)
			l.b.metrics.conn(connTooMany)
			_ = raw.Close()
			l.log.Warn("mqtt connection refused", "remote", raw.RemoteAddr().String(), "reason", "too many connections")
			continue
		}
		// Under addMu, so that no Add follows Close's Wait (wait).
		l.addMu.Lock()
		if l.closing.Load() {
			l.addMu.Unlock()
			l.open.Add(-1)
			_ = raw.Close()
			return
		}
		l.wg.Add(1)
		// mochi counts a client in ClientsWg from inside
		// EstablishConnection, which can race with the Wait in its
		// Server.Close (WaitGroup Add from zero concurrent with Wait).
		// Counting the connection here, under addMu, orders the count
		// before Close; mochi's own Add then never starts from zero.
		l.b.server.Listeners.ClientsWg.Add(1)
		l.addMu.Unlock()
		go func() {
			defer l.b.server.Listeners.ClientsWg.Done()
			defer l.wg.Done()
			defer l.open.Add(-1)
			l.serveConn(raw, establish)
		}()
	}
}

// serveConn runs the handshake, hands the connection to mochi and returns
// when mochi is done with it.
func (l *listener) serveConn(raw net.Conn, establish listeners.EstablishFn) {
	b := l.b
	c := &conn{raw: raw, acks: newAckQueue(l.b.opts.ReceiveMaximum)}
	defer func() {
		_ = raw.Close()
		b.untrack(c)
	}()

	cfg := b.tls.Clone()
	callerVerify := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if callerVerify != nil {
			if err := callerVerify(cs); err != nil {
				return err
			}
		}
		return b.verify(c, cs)
	}
	c.Conn = tls.Server(raw, cfg)

	_ = raw.SetDeadline(time.Now().Add(b.opts.HandshakeTimeout))
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.HandshakeTimeout)
	err := c.HandshakeContext(ctx)
	cancel()
	if err != nil {
		// Refusals by Authenticate were logged in verify with the
		// certificate; this is everything else (wrong CA, old TLS, timeout).
		if c.gateway == "" && c.certSerial == "" {
			l.log.Info("mqtt handshake refused", "remote", raw.RemoteAddr().String(), "reason", err.Error())
		}
		if (c.certSerial != "" && c.gateway == "") || c.revoked.Load() {
			b.metrics.conn(connHandshakeRefused)
		} else {
			b.metrics.conn(connHandshakeFailed)
		}
		return
	}
	if c.revoked.Load() {
		b.metrics.conn(connHandshakeRefused)
		return
	}
	// The deadline for CONNECT; the hook's OnConnect clears it, and mochi
	// then keeps its own keep-alive deadline.
	_ = raw.SetDeadline(time.Now().Add(b.opts.ConnectTimeout))
	if l.closing.Load() {
		return
	}
	err = establish(listenerID, c)
	if err != nil {
		l.log.Debug("mqtt connection ended", "gateway", c.gateway, "cert_serial", c.certSerial, "error", err)
	}
	b.mu.Lock()
	session := c.session
	b.mu.Unlock()
	if !session && !l.closing.Load() {
		b.metrics.conn(connConnectRefused)
	}
}

// Close stops accepting, disconnects the clients mochi knows (with
// DISCONNECT "server shutting down") and then closes the socket of every
// connection still tracked. That includes established sessions: mochi
// records a session (OnSessionEstablish) before it adds the client to the
// list of clients it disconnects (server.go, Server.attachClient calls
// Clients.Add after hooks.OnSessionEstablish), so a gateway connecting at
// that moment is in neither and would otherwise keep its connection, and
// mochi's Server.Close would wait for it (Listeners.CloseAll waits for
// every client's read loop) as long as the gateway stays connected.
// A connection tracked after this finds closing set before it reaches
// mochi (serveConn).
func (l *listener) Close(listeners.CloseFn) {
	l.addMu.Lock()
	first := l.closing.CompareAndSwap(false, true)
	l.addMu.Unlock()
	if !first {
		return
	}
	_ = l.ln.Close()
	// Not the CloseFn (mochi's Server.closeListenerClients): in mochi
	// v2.7.9 it calls Clients.GetByListener, which takes the clients'
	// read lock twice (clients.go: GetByListener calls Len under RLock);
	// a gateway disconnecting at that moment (Clients.Delete waits for the
	// write lock) then deadlocks both, and Close with them. GetAll takes
	// the lock once.
	for _, cl := range l.b.server.Clients.GetAll() {
		if cl.Net.Listener == listenerID && !cl.Closed() {
			_ = l.b.server.DisconnectClient(cl, packets.ErrServerShuttingDown)
		}
	}
	l.b.mu.Lock()
	for c := range l.b.conns {
		_ = c.raw.Close()
	}
	l.b.mu.Unlock()
}

// wait returns when every connection goroutine has returned.
func (l *listener) wait() { l.wg.Wait() }

// verify is the broker's part of VerifyConnection: the chain is already
// verified against ClientCAs; here the CA says whether the certificate is
// stored, unrevoked and operational, and which gateway it names.
func (b *Broker) verify(c *conn, cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no client certificate")
	}
	leaf := cs.PeerCertificates[0]
	c.certSerial = leaf.SerialNumber.String()
	// Track before asking, so a revocation published while Authenticate runs
	// finds this connection (one published before it is in the CA's store).
	b.track(c)
	gateway, err := b.opts.Authenticate(leaf)
	if err != nil {
		b.log.Warn("mqtt handshake refused", "cert_serial", c.certSerial, "subject", leaf.Subject.CommonName,
			"remote", c.raw.RemoteAddr().String(), "reason", err.Error())
		return fmt.Errorf("certificate refused: %w", err)
	}
	if !validSerial(gateway) {
		b.log.Warn("mqtt handshake refused", "cert_serial", c.certSerial, "gateway", gateway,
			"reason", "gateway serial cannot be a topic level")
		return errors.New("certificate refused: unusable gateway serial")
	}
	if c.revoked.Load() {
		return errors.New("certificate refused: revoked")
	}
	b.mu.Lock() // DisconnectCertificates and Close read it under b.mu
	c.gateway = gateway
	b.mu.Unlock()
	return nil
}
