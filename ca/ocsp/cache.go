package ocsp

import (
	"crypto/sha256"
	"encoding/hex"
	"hash/maphash"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// entry is one signed response, ready to write: its headers are formatted
// once, at signing, so that serving it from the cache formats nothing. An
// entry is immutable once published, except for its two atomics.
type entry struct {
	st         Entry
	der        []byte // nil for a revocation whose response is not signed yet
	thisUpdate time.Time
	nextUpdate time.Time
	refreshAt  time.Time // re-sign on first use after this (half the validity)

	etag          string   // quoted, for If-None-Match
	etagHdr       []string // header values, shared by every response
	lastModified  []string
	expires       []string
	contentLength []string

	maxAge     atomic.Pointer[maxAge] // Cache-Control, reformatted once a second
	refreshing atomic.Bool            // one request at a time re-signs it
}

// maxAge is a Cache-Control header value valid during one second.
type maxAge struct {
	unix int64
	hdr  []string
}

// newEntry wraps a signed response.
func newEntry(st Entry, der []byte, thisUpdate, nextUpdate time.Time) *entry {
	sum := sha256.Sum256(der)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	return &entry{
		st:            st,
		der:           der,
		thisUpdate:    thisUpdate,
		nextUpdate:    nextUpdate,
		refreshAt:     thisUpdate.Add(nextUpdate.Sub(thisUpdate) / 2),
		etag:          etag,
		etagHdr:       []string{etag},
		lastModified:  []string{thisUpdate.UTC().Format(http.TimeFormat)},
		expires:       []string{nextUpdate.UTC().Format(http.TimeFormat)},
		contentLength: []string{strconv.Itoa(len(der))},
	}
}

// tombstone is a revocation not signed yet: a request signs it from st,
// never from the Source, and until then it wins over any good answer.
func tombstone(st Entry) *entry { return &entry{st: st} }

// usable reports whether e may be served at now.
func (e *entry) usable(now time.Time) bool {
	return e != nil && e.der != nil && now.Before(e.nextUpdate)
}

// cacheControl returns the Cache-Control header for a response served at
// now: cacheable until nextUpdate and not a second longer.
func (e *entry) cacheControl(now time.Time) []string {
	sec := now.Unix()
	if m := e.maxAge.Load(); m != nil && m.unix == sec {
		return m.hdr
	}
	left := max(int64(e.nextUpdate.Sub(now)/time.Second), 0)
	m := &maxAge{unix: sec, hdr: []string{"max-age=" + strconv.FormatInt(left, 10) + ", public, no-transform, must-revalidate"}}
	e.maxAge.Store(m)
	return m.hdr
}

// cacheShards spreads the cache over independently locked maps so that
// concurrent hits do not queue on one lock.
const cacheShards = 64

// cache holds signed responses keyed by (CertID hash algorithm, serial),
// bounded to about max entries.
type cache struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]shard
}

type shard struct {
	mu sync.RWMutex
	m  map[string]*entry
	_  [32]byte // keep shards apart on separate cache lines
}

func newCache(maxEntries int) *cache {
	c := &cache{seed: maphash.MakeSeed(), perShard: max(1, (maxEntries+cacheShards-1)/cacheShards)}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*entry)
	}
	return c
}

// maxKey bounds a cache key: the algorithm and a serial of up to 64
// bytes. RFC 5280 serials have at most 20; longer ones are never cached.
const maxKey = 1 + 64

// appendKey appends the cache key of (algorithm index, serial) to b, where
// serial is the content of the serial's DER INTEGER, or returns nil when
// the serial is too long to be one of ours.
func appendKey(b []byte, alg int, serial []byte) []byte {
	if len(serial) > maxKey-1 {
		return nil
	}
	return append(append(b, byte(alg)), serial...)
}

func (c *cache) shard(key []byte) *shard {
	return &c.shards[maphash.Bytes(c.seed, key)%cacheShards]
}

// get returns the entry for key, or nil.
func (c *cache) get(key []byte) *entry {
	s := c.shard(key)
	s.mu.RLock()
	e := s.m[string(key)]
	s.mu.RUnlock()
	return e
}

// replace stores e under key if the entry there is still old (nil: none)
// and keep allows it, and returns what is cached for key afterwards
// (possibly nil). keep runs under the shard's lock.
func (c *cache) replace(key []byte, old, e *entry, now time.Time, keep func() bool) (cur *entry, stored bool) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur = s.m[string(key)]
	if cur != old || (keep != nil && !keep()) {
		return cur, false
	}
	s.put(string(key), e, c.perShard, now)
	return e, true
}

// set stores e under key whatever is there.
func (c *cache) set(key []byte, e *entry, now time.Time) {
	s := c.shard(key)
	s.mu.Lock()
	s.put(string(key), e, c.perShard, now)
	s.mu.Unlock()
}

// put stores e, first evicting an entry when the shard is full: an expired
// one if the first few looked at include one, else the first of them (map
// iteration starts at random, so this is random eviction).
func (s *shard) put(key string, e *entry, limit int, now time.Time) {
	if _, ok := s.m[key]; !ok && len(s.m) >= limit {
		victim, n := "", 0
		for k, v := range s.m {
			if n == 0 {
				victim = k
			}
			if v.der != nil && !now.Before(v.nextUpdate) {
				victim = k
				break
			}
			if n++; n == 8 {
				break
			}
		}
		delete(s.m, victim)
	}
	s.m[key] = e
}

// sweep drops entries that expired by now; signed revocations that expired
// go too (the Source still knows them).
func (c *cache) sweep(now time.Time) (left int) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, v := range s.m {
			if v.der != nil && !now.Before(v.nextUpdate) {
				delete(s.m, k)
			}
		}
		left += len(s.m)
		s.mu.Unlock()
	}
	return left
}

// len counts the entries.
func (c *cache) len() (n int) {
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
