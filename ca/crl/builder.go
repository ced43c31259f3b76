package crl

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/big"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Builder keeps one signed CRL per shard, serves them over HTTP, and
// rebuilds them on schedule ([Builder.Run]) and after revocations
// ([Builder.Revoked]).
type Builder struct {
	cfg     Config
	src     Source
	log     *slog.Logger
	metrics *metrics
	shards  []shard

	mu        sync.Mutex
	pending   [][]entry // per shard: revocations not yet on a signed CRL
	dirty     []bool    // per shard: on dirtyList
	dirtyList []int     // shards with pending revocations or a failed build
	wake      chan struct{}

	running   atomic.Bool
	staleWarn atomic.Int64 // Unix seconds of ServeHTTP's last stale-CRL warning
}

// shard is one CRL and the list it was built from. list, published and
// number belong to whoever builds (New, then Run, one shard per worker);
// readers only load cur.
type shard struct {
	list      []entry  // sorted by serial, exactly what cur lists
	published int64    // cur's thisUpdate, Unix seconds; 0 before the first
	number    *big.Int // cur's CRL number
	cur       atomic.Pointer[signed]
}

// signed is a shard's current CRL, immutable once stored.
type signed struct {
	der        []byte
	etag       string // quoted, from the DER's hash
	number     *big.Int
	thisUpdate time.Time
	nextUpdate time.Time
	entries    int
}

// New loads every revocation from src and builds every shard's CRL before it
// returns, so the CRLs can be served at once. Revocations committed after
// the scan began must reach [Builder.Revoked]; a record seen twice is
// listed once, as last seen.
func New(ctx context.Context, cfg Config, src Source) (*Builder, error) {
	cfg.setDefaults()
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("crl config: %w", err)
	}
	b := &Builder{
		cfg:     cfg,
		src:     src,
		log:     cfg.Logger,
		shards:  make([]shard, cfg.Shards),
		pending: make([][]entry, cfg.Shards),
		dirty:   make([]bool, cfg.Shards),
		wake:    make(chan struct{}, 1),
	}
	b.metrics = newMetrics(b)
	now := cfg.Clock()
	skipped := 0
	err := src.Revocations(ctx, func(r Revoked) error {
		e, err := newEntry(r, now)
		if err != nil {
			if skipped++; skipped <= 10 {
				b.log.Error("skip revocation record", "serial", r.Serial, "err", err)
			}
			return nil
		}
		s := Shard(r.Serial, cfg.Shards)
		b.pending[s] = append(b.pending[s], e) // b is not shared yet
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load revocations: %w", err)
	}
	if skipped > 0 {
		b.log.Error("revocation records skipped", "count", skipped)
	}
	if _, err := b.rebuild(ctx, b.all(), "start"); err != nil {
		return nil, fmt.Errorf("build CRLs: %w", err)
	}
	if err := b.metrics.register(cfg.Registerer); err != nil {
		return nil, err
	}
	return b, nil
}

// Revoked adds a revocation to its shard, to be listed once [Builder.Run]
// rebuilds the shard, [Config.Coalesce] after the first revocation since the
// last rebuild. It never waits for a build and is safe for concurrent use; the
// builder keeps no reference to r.Serial.
func (b *Builder) Revoked(r Revoked) {
	e, err := newEntry(r, b.cfg.Clock())
	if err != nil {
		b.log.Error("ignore revocation", "serial", r.Serial, "err", err)
		return
	}
	s := Shard(r.Serial, b.cfg.Shards)
	b.mu.Lock()
	b.pending[s] = append(b.pending[s], e)
	first := b.markDirtyLocked(s)
	b.mu.Unlock()
	if first {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// markDirtyLocked puts shard s on the dirty list and reports whether the
// list was empty.
func (b *Builder) markDirtyLocked(s int) bool {
	first := len(b.dirtyList) == 0
	if !b.dirty[s] {
		b.dirty[s] = true
		b.dirtyList = append(b.dirtyList, s)
	}
	return first
}

// takeDirty empties the dirty list and returns it, sorted.
func (b *Builder) takeDirty() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	list := b.dirtyList
	b.dirtyList = nil
	for _, s := range list {
		b.dirty[s] = false
	}
	slices.Sort(list)
	return list
}

// CRL returns a copy of shard's current CRL (DER), or nil if there is no
// such shard.
func (b *Builder) CRL(shard int) []byte {
	if shard < 0 || shard >= len(b.shards) {
		return nil
	}
	return slices.Clone(b.shards[shard].cur.Load().der)
}

// URL returns the distribution point of shard: where its CRL is published,
// and what the certificates it lists name.
func (b *Builder) URL(shard int) string {
	return b.cfg.BaseURL + ShardName(shard) + ".crl"
}

func (b *Builder) all() []int {
	all := make([]int, len(b.shards))
	for i := range all {
		all[i] = i
	}
	return all
}

// rebuild signs new CRLs for shards, in parallel, with CRL numbers reserved
// in one call to the source. It returns the shards whose CRL it could not
// replace; they keep their previous one.
func (b *Builder) rebuild(ctx context.Context, shards []int, trigger string) (failed []int, err error) {
	start := time.Now()
	defer func() { b.metrics.observe(trigger, len(shards), len(failed), time.Since(start)) }()
	thisUpdate := b.cfg.Clock().UTC().Truncate(time.Second)
	numbers, err := b.src.NextCRLNumbers(ctx, shards)
	if err == nil && len(numbers) != len(shards) {
		err = fmt.Errorf("got %d numbers for %d shards", len(numbers), len(shards))
	}
	if err != nil {
		return shards, fmt.Errorf("reserve CRL numbers: %w", err)
	}
	errs := make([]error, len(shards))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(shards)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(shards) {
					return
				}
				errs[i] = b.build(shards[i], numbers[i], thisUpdate)
			}
		})
	}
	wg.Wait()
	var first error
	for i, e := range errs {
		if e != nil {
			failed = append(failed, shards[i])
			if first == nil {
				first = e
			}
		}
	}
	if first != nil {
		return failed, fmt.Errorf("%d of %d shards failed, first: %w", len(failed), len(shards), first)
	}
	return nil, nil
}

// build signs a new CRL for shard s: its list with the pending revocations
// merged in and the expired entries dropped. On error nothing changes.
func (b *Builder) build(s int, number *big.Int, thisUpdate time.Time) error {
	sh := &b.shards[s]
	if number == nil || number.Sign() <= 0 || (sh.number != nil && number.Cmp(sh.number) <= 0) {
		return fmt.Errorf("shard %s: CRL number %v does not follow %v", ShardName(s), number, sh.number)
	}
	b.mu.Lock()
	pending := b.pending[s]
	b.mu.Unlock()
	// Revoked only appends: the first len(pending) entries stay as they are.
	list := merge(sh.list, sortLatest(pending), sh.published)
	der, err := b.sign(s, list, number, thisUpdate)
	if err != nil {
		return fmt.Errorf("shard %s: %w", ShardName(s), err)
	}
	sum := sha256.Sum256(der)
	sh.list, sh.published, sh.number = list, thisUpdate.Unix(), number
	b.mu.Lock()
	b.pending[s] = slices.Clip(b.pending[s][len(pending):])
	if len(b.pending[s]) == 0 {
		b.pending[s] = nil
	}
	b.mu.Unlock()
	sh.cur.Store(&signed{
		der:        der,
		etag:       `"` + hex.EncodeToString(sum[:16]) + `"`,
		number:     number,
		thisUpdate: thisUpdate,
		nextUpdate: thisUpdate.Add(b.cfg.Validity),
		entries:    len(list),
	})
	return nil
}

// sign makes shard s's CRL listing list.
func (b *Builder) sign(s int, list []entry, number *big.Int, thisUpdate time.Time) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, len(list))
	serials := make([]big.Int, len(list))
	for i := range list {
		e := &list[i]
		entries[i] = x509.RevocationListEntry{
			SerialNumber:   serials[i].SetBytes(e.serial[:]),
			RevocationTime: time.Unix(e.revokedAt, 0).UTC(),
			ReasonCode:     int(e.reason),
		}
	}
	tpl := &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                thisUpdate,
		NextUpdate:                thisUpdate.Add(b.cfg.Validity),
		RevokedCertificateEntries: entries,
		ExtraExtensions:           []pkix.Extension{issuingDistributionPoint(b.URL(s))},
	}
	der, err := x509.CreateRevocationList(rand.Reader, tpl, b.cfg.Issuer, b.cfg.Signer)
	if err != nil {
		return nil, fmt.Errorf("sign CRL: %w", err)
	}
	return der, nil
}
