package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// keepalive is the MQTT keep-alive of every connection: longer than a run,
// so that idle connections send nothing and stay open.
const keepalive = 900

// ioTimeout bounds every handshake, CONNECT and wait for an acknowledgement.
const ioTimeout = 30 * time.Second

// mqttConn is one gateway's open MQTT connection.
type mqttConn struct {
	gw   *gateway
	conn *tls.Conn
	r    *packetReader
}

// close sends DISCONNECT and closes the connection.
func (c *mqttConn) close() {
	c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	c.conn.Write(appendDisconnect(nil))
	c.conn.Close()
}

// dialer connects gateways to one broker.
type dialer struct {
	addr  string // 127.0.0.1:PORT
	roots *x509.CertPool

	mu       sync.Mutex
	verified []byte // the server certificate the first handshake verified
}

// verifyServer checks the broker's chain to d.roots for the address the
// gateway dialled, once: later handshakes only compare the certificate with
// the one verified, so that the load generator spends its CPU on load,
// not on checking the same two signatures ten thousand times.
func (d *dialer) verifyServer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the broker sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.verified != nil && bytes.Equal(d.verified, leaf.Raw) {
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: cs.ServerName, Roots: d.roots, Intermediates: inter}); err != nil {
		return err
	}
	d.verified = leaf.Raw
	return nil
}

// connect opens an mTLS connection as gw, sends CONNECT (client ID = serial,
// clean session) and waits for CONNACK "accepted".
func (d *dialer) connect(ctx context.Context, gw *gateway) (*mqttConn, error) {
	ctx, cancel := context.WithTimeout(ctx, ioTimeout)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(d.addr)
	conn := tls.Client(raw, &tls.Config{
		ServerName:   host,
		Certificates: []tls.Certificate{gw.cert},
		MinVersion:   tls.VersionTLS12,
		// Verified by VerifyConnection instead: see verifyServer.
		InsecureSkipVerify: true,
		VerifyConnection:   d.verifyServer,
	})
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	if _, err := conn.Write(appendConnect(make([]byte, 0, 64), gw.serial, keepalive)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("write CONNECT: %w", err)
	}
	r := newPacketReader(conn, 512)
	p, err := r.read()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("read CONNACK: %w", err)
	}
	code, err := p.connackCode()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if code != 0 {
		conn.Close()
		return nil, fmt.Errorf("CONNACK: %s", connackReason(code))
	}
	conn.SetDeadline(time.Time{})
	return &mqttConn{gw: gw, conn: conn, r: r}, nil
}

// stormResult is what the connect storm measured.
type stormResult struct {
	conns     []*mqttConn // the open connections, in the gateways' order
	latencies []time.Duration
	wall      time.Duration
	errors    int
	firstErr  error
	tls       string // the TLS version and key exchange of the first connection
}

// connectStorm connects every gateway, c at a time, as fast as the broker
// accepts them; the connections stay open.
func connectStorm(ctx context.Context, d *dialer, gws []*gateway, c int) *stormResult {
	res := &stormResult{conns: make([]*mqttConn, len(gws))}
	lat := make([]time.Duration, len(gws))
	var next atomic.Int64
	var errs atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range min(c, len(gws)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(gws) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				mc, err := d.connect(ctx, gws[i])
				if err != nil {
					errs.Add(1)
					once.Do(func() { res.firstErr = fmt.Errorf("%s: %w", gws[i].serial, err) })
					continue
				}
				lat[i] = time.Since(t0)
				res.conns[i] = mc
			}
		}()
	}
	wg.Wait()
	res.wall = time.Since(start)
	res.errors = int(errs.Load())
	for i, mc := range res.conns {
		if mc != nil {
			res.latencies = append(res.latencies, lat[i])
			if res.tls == "" {
				st := mc.conn.ConnectionState()
				res.tls = tls.VersionName(st.Version) + " " + st.CurveID.String()
			}
		}
	}
	slices.Sort(res.latencies)
	return res
}

// closeAll disconnects every open connection, 64 at a time.
func closeAll(conns []*mqttConn) {
	var wg sync.WaitGroup
	ch := make(chan *mqttConn)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				c.close()
			}
		}()
	}
	for _, c := range conns {
		if c != nil {
			ch <- c
		}
	}
	close(ch)
	wg.Wait()
}

// Phases of the publish run.
const (
	phaseWarmup = iota
	phaseMeasure
	phaseStop
)

// publishRun is the state of the QoS 1 phase shared by every publisher.
type publishRun struct {
	window int
	// interval is the time between two messages of one publisher when the
	// phase is paced; 0 publishes whenever the window allows.
	interval time.Duration
	phase    atomic.Int32
	// acked counts the PUBACKs received while measuring.
	acked atomic.Int64
}

// publisher is one gateway publishing with a window of unacknowledged
// messages.
type publisher struct {
	c    *mqttConn
	run  *publishRun
	free chan uint16    // packet identifiers not in flight
	sent []atomic.Int64 // per identifier, when its PUBLISH was written (UnixNano)

	seq       int
	acks      int             // every PUBACK, warm-up included
	latencies []time.Duration // PUBACK latencies received while measuring
	werr      error           // the writer's
	rerr      error           // the reader's
	done      chan struct{}   // closed when the reader returned
}

// pumpReading is a ~200-byte pump reading of gateway serial.
func pumpReading(b []byte, serial string, seq int, now time.Time) []byte {
	b = append(b, `{"serial":"`...)
	b = append(b, serial...)
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, `,"ts":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","pump":{"state":"running","rpm":2950,"flow_m3h":`...)
	b = strconv.AppendFloat(b, 41.5+float64(seq%17)/10, 'f', 1, 64)
	b = append(b, `,"head_m":32.4,"power_kw":7.35,"temp_c":`...)
	b = strconv.AppendFloat(b, 48+float64(seq%9)/10, 'f', 1, 64)
	b = append(b, `,"vibration_mms":1.8,"alarms":[]}}`...)
	return b
}

// writer sends PUBLISH packets until the run stops: unpaced, whenever
// identifiers are free, as many as are free in one write; paced, one every
// interval (those overdue together), as long as the window allows.
func (p *publisher) writer() {
	buf := make([]byte, 0, p.run.window*300)
	payload := make([]byte, 0, 256)
	ids := make([]uint16, 0, p.run.window)
	interval := p.run.interval
	var next time.Time
	if interval > 0 {
		// Publishers start spread over one interval.
		next = time.Now().Add(rand.N(interval))
	}
	for p.run.phase.Load() != phaseStop {
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				time.Sleep(min(d, 100*time.Millisecond))
				continue
			}
		}
		var id uint16
		select {
		case id = <-p.free:
		case <-time.After(100 * time.Millisecond):
			continue
		}
		ids = append(ids[:0], id)
		next = next.Add(interval)
	more:
		for interval == 0 || time.Until(next) <= 0 {
			select {
			case id := <-p.free:
				ids = append(ids, id)
				next = next.Add(interval)
			default:
				break more
			}
		}
		now := time.Now()
		buf = buf[:0]
		for _, id := range ids {
			p.seq++
			payload = pumpReading(payload[:0], p.c.gw.serial, p.seq, now)
			buf = appendPublish(buf, p.c.gw.topic, id, payload)
			p.sent[id].Store(now.UnixNano())
		}
		p.c.conn.SetWriteDeadline(now.Add(ioTimeout))
		if _, err := p.c.conn.Write(buf); err != nil {
			p.werr = fmt.Errorf("write PUBLISH: %w", err)
			return
		}
	}
}

// reader reads PUBACKs, frees their identifiers and records their latency,
// until every identifier is free once the run stopped.
func (p *publisher) reader() error {
	inFlight := func() int { return p.run.window - len(p.free) }
	for {
		if p.run.phase.Load() == phaseStop && inFlight() == 0 {
			return nil
		}
		p.c.conn.SetReadDeadline(time.Now().Add(ioTimeout))
		pk, err := p.c.r.read()
		if err != nil {
			if p.run.phase.Load() == phaseStop && inFlight() == 0 {
				return nil
			}
			return fmt.Errorf("read PUBACK: %w", err)
		}
		if pk.typ == typePingresp {
			continue
		}
		id, err := pk.pubackID()
		if err != nil {
			return err
		}
		if id == 0 || int(id) > p.run.window {
			return fmt.Errorf("PUBACK for packet identifier %d, never sent", id)
		}
		sent := p.sent[id].Swap(0)
		if sent == 0 {
			return fmt.Errorf("PUBACK for packet identifier %d, not in flight", id)
		}
		lat := time.Duration(time.Now().UnixNano() - sent)
		p.acks++
		if p.run.phase.Load() == phaseMeasure {
			p.run.acked.Add(1)
			p.latencies = append(p.latencies, lat)
		}
		p.free <- id
	}
}

// publishResult is what the QoS 1 phase measured.
type publishResult struct {
	publishers []*publisher
	measured   time.Duration
	acked      int64
	latencies  []time.Duration
	errors     int
	firstErr   error
}

// publish has each connection of conns publish QoS 1 with window
// unacknowledged messages, for warmup, then for d measured; then it stops
// sending and waits for the last PUBACKs. measure, when set, is called at
// the start and the end of the measured window (for CPU times).
//
// rate, when positive, paces the phase: the publishers together offer rate
// messages/s, each gateway at rate/len(conns), so that the latency is the
// broker's at that load rather than the queue a full window makes.
func publish(ctx context.Context, conns []*mqttConn, window int, rate float64, warmup, d time.Duration, measure func(start bool)) *publishResult {
	run := &publishRun{window: window}
	if rate > 0 {
		run.interval = time.Duration(float64(len(conns)) / rate * float64(time.Second))
	}
	pubs := make([]*publisher, len(conns))
	for i, c := range conns {
		p := &publisher{c: c, run: run, free: make(chan uint16, window), sent: make([]atomic.Int64, window+1)}
		for id := 1; id <= window; id++ {
			p.free <- uint16(id)
		}
		pubs[i] = p
	}
	var writers sync.WaitGroup
	for _, p := range pubs {
		p.done = make(chan struct{})
		writers.Add(1)
		go func() {
			defer writers.Done()
			p.writer()
		}()
		go func() {
			defer close(p.done)
			p.rerr = p.reader()
		}()
	}
	sleep := func(d time.Duration) {
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
	}
	sleep(warmup)
	if measure != nil {
		measure(true)
	}
	run.phase.Store(phaseMeasure)
	start := time.Now()
	sleep(d)
	run.phase.Store(phaseStop)
	res := &publishResult{publishers: pubs, measured: time.Since(start), acked: run.acked.Load()}
	if measure != nil {
		measure(false)
	}
	writers.Wait()
	// A reader may be waiting for a PUBACK that will never come because
	// nothing is in flight: wake those until every reader has returned.
	for _, p := range pubs {
		for waited := false; !waited; {
			select {
			case <-p.done:
				waited = true
			case <-time.After(50 * time.Millisecond):
				if len(p.free) == window {
					p.c.conn.SetReadDeadline(time.Now())
				}
			}
		}
	}
	for _, p := range pubs {
		res.latencies = append(res.latencies, p.latencies...)
		if err := cmp.Or(p.werr, p.rerr); err != nil {
			res.errors++
			if res.firstErr == nil {
				res.firstErr = fmt.Errorf("%s: %w", p.c.gw.serial, err)
			}
		}
	}
	slices.Sort(res.latencies)
	return res
}
