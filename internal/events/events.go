// Package events is gwpki's in-process event bus: the one place through
// which an event that several parts react to (a revocation today; claims and
// gateway commands later) travels from the part that caused it to the parts
// that react. A cross-node transport (PostgreSQL LISTEN/NOTIFY, see
// DESIGN.md) can later feed the same topics.
package events

import "sync"

// Topic delivers values of type T to every subscriber. The zero Topic is
// ready to use and safe for concurrent use.
type Topic[T any] struct {
	mu   sync.RWMutex
	subs []func(T)
}

// Subscribe registers fn; it is called for every later Publish, in the
// publisher's goroutine, after the subscribers registered before it.
// Subscribers must be quick and must not block: the publisher waits for
// them, which is what lets a revocation reach the OCSP cache before the
// revoking request is answered.
func (t *Topic[T]) Subscribe(fn func(T)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.subs = append(t.subs, fn)
}

// Publish calls every subscriber with v and returns when all have returned.
func (t *Topic[T]) Publish(v T) {
	t.mu.RLock()
	subs := t.subs
	t.mu.RUnlock()
	for _, fn := range subs {
		fn(v)
	}
}
