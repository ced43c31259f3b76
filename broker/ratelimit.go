package broker

import (
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// limitLogInterval is the least time between two log lines about one
// gateway's publishes refused by the rate limit; the lines in between are
// counted into the next one.
const limitLogInterval = 10 * time.Second

// limitSweepInterval is how often the buckets of gateways that are no
// longer connected and whose buckets have filled up again are forgotten.
const limitSweepInterval = time.Minute

// bucket is one gateway's token bucket: it holds up to burst tokens,
// gains rate tokens a second, and every publish takes one. It is shared by
// every connection of the gateway and outlives them until it is full
// again, so that reconnecting does not refill it.
type bucket struct {
	mu       sync.Mutex
	tokens   float64
	last     time.Time // when tokens was last brought up to date
	users    int       // live sessions using it; guarded by limiter.mu
	loggedAt time.Time // last log line about refusals
	refused  int       // refusals not logged yet
}

// take refills the bucket for the time since the last call and takes a
// token if there is one.
func (k *bucket) take(now time.Time, rate, burst float64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if d := now.Sub(k.last); d > 0 {
		k.tokens = min(burst, k.tokens+d.Seconds()*rate)
		k.last = now
	}
	if k.tokens >= 1 {
		k.tokens--
		return true
	}
	return false
}

// refusal records a refused publish and reports whether to log it now,
// and how many refusals the log line covers.
func (k *bucket) refusal(now time.Time) (log bool, n int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.refused++
	if !k.loggedAt.IsZero() && now.Sub(k.loggedAt) < limitLogInterval {
		return false, 0
	}
	n, k.refused, k.loggedAt = k.refused, 0, now
	return true, n
}

// full reports whether the bucket would be full at now.
func (k *bucket) full(now time.Time, rate, burst float64) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.tokens+now.Sub(k.last).Seconds()*rate >= burst
}

// limiter keeps the gateways' buckets.
type limiter struct {
	rate, burst float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

func newLimiter(rate float64, burst int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), buckets: make(map[string]*bucket)}
}

// acquire returns gateway's bucket, a full one if it has none, for a new
// session.
func (l *limiter) acquire(gateway string, now time.Time) *bucket {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.buckets[gateway]
	if k == nil {
		k = &bucket{tokens: l.burst, last: now}
		l.buckets[gateway] = k
	}
	k.users++
	return k
}

// release ends a session's use of its bucket.
func (l *limiter) release(k *bucket) {
	l.mu.Lock()
	k.users--
	l.mu.Unlock()
}

// sweep forgets the buckets no session uses that are full again: a
// gateway connecting later gets a full one anyway.
func (l *limiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for gw, k := range l.buckets {
		if k.users <= 0 && k.full(now, l.rate, l.burst) {
			delete(l.buckets, gw)
		}
	}
}

// size returns the number of buckets kept.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// sweepLoop runs sweep until the broker closes.
func (b *Broker) sweepLoop() {
	defer b.wg.Done()
	t := time.NewTicker(limitSweepInterval)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case now := <-t.C:
			b.limits.sweep(now)
		}
	}
}

// PublishLimited returns how many publishes the per-gateway rate limit
// refused since the broker started (none of them was stored).
func (b *Broker) PublishLimited() uint64 { return b.limited.Load() }

// refuseOverLimit handles a publish over the gateway's rate: it is never
// stored. At QoS 0 it is dropped. At QoS 1 an MQTT 5 client gets PUBACK
// 0x97 "quota exceeded", in order after the PUBACKs of its earlier
// messages; an MQTT 3.1.1 client, which has no negative PUBACK, gets the
// PUBACKs of its earlier messages and is then disconnected, and nothing
// it sends meanwhile is stored.
func (b *Broker) refuseOverLimit(cl *mqtt.Client, c *conn, pk packets.Packet) {
	b.limited.Add(1)
	v5 := cl.Properties.ProtocolVersion == 5
	qos1 := pk.FixedHeader.Qos > 0
	if log, n := c.bucket.refusal(time.Now()); log {
		action := "dropped"
		switch {
		case qos1 && v5:
			action = "puback quota exceeded"
		case qos1:
			action = "disconnected"
		}
		b.log.Warn("mqtt publish refused", "gateway", c.gateway, "cert_serial", c.certSerial,
			"reason", "publish rate limit", "rate", b.limits.rate, "burst", b.limits.burst,
			"action", action, "refused", n)
	}
	if !qos1 {
		return
	}
	if !v5 {
		c.cut.Store(true)
	}
	b.refuse(cl, c, &pendingAck{packetID: pk.PacketID, ack: v5, code: packets.ErrQuotaExceeded.Code, cut: !v5})
}
