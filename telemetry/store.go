// # Layout
//
// [Store] keeps telemetry in a bbolt file of its own (telemetry.db in the
// data directory), separate from the CA, registry and audit so that its
// write rate and size never slow them down. At the top level it holds a
// "meta" bucket (the partition span, fixed when the file is created) and one
// bucket per time partition, named "p/" followed by the partition's start as
// 8 bytes of big-endian unix seconds, so that the names sort by time. Each
// partition covers [start, start+span) of receive time and holds two
// sub-buckets:
//
//   - "log": key = 8-byte big-endian sequence from the bucket's NextSequence,
//     so every write appends at the right edge of the B+tree; value = the
//     record: a format byte, the gateway and topic each preceded by a uvarint
//     length, the receive time as 8 bytes of big-endian unix nanoseconds, and
//     the payload as published.
//   - "idx": the per-gateway index; key = gateway, 0x00, 8-byte big-endian
//     unix nanoseconds, 8-byte big-endian sequence; empty value. A query
//     seeks to gateway+0x00+since in each partition that overlaps its window
//     and reads forward in time order. It is written behind the log, every
//     IndexInterval, up to the partition's watermark ("indexed": the last
//     log sequence indexed); a query reads the log records past the
//     watermark too (index.go).
//
// # Durability
//
// [Store.Append] is one update of a [store.DB], which gathers concurrent
// updates into one transaction and one commit (group commit) and returns only
// once that commit is on disk. The broker sends a QoS 1 PUBACK only after
// Append returned nil, so an acknowledged message survives a crash and is
// stored exactly once. A publisher that re-sends a message after a crash
// because it never saw the PUBACK (MQTT DUP) may leave a second copy: that is
// MQTT's at-least-once QoS 1, not a store fault.
//
// # Retention
//
// [Store.Prune] deletes whole partition buckets whose span ended at least
// [Options.Retention] ago; nothing is ever deleted message by message, so the
// file stays append-only and freed pages are reused by later partitions.
package telemetry

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/internal/store"
)

// Defaults for [Options].
const (
	DefaultLinger    = time.Millisecond
	DefaultPartition = time.Hour
	DefaultRetention = 30 * 24 * time.Hour
	// PruneInterval is how often [Store.Run] prunes.
	PruneInterval = 10 * time.Minute
)

var (
	metaBucket   = []byte("meta")
	spanKey      = []byte("partition")
	logBucket    = []byte("log")
	idxBucket    = []byte("idx")
	partitionPfx = []byte("p/")
)

// Options tune a [Store]; the zero value of each field means its default.
type Options struct {
	// Linger is the group-commit linger handed to [store.Options.Linger]
	// (default 1ms): under load the committer waits this long for more
	// appends to share a commit.
	Linger time.Duration
	// Partition is the span of one time partition (default 1h; a whole
	// number of seconds). It is recorded in the file when the file is
	// created; on a later Open the file's span is used, with a warning
	// when Partition was set to another value.
	Partition time.Duration
	// Retention is how long messages are kept at least (default 30 days):
	// [Store.Prune] drops a partition once its whole span is older.
	Retention time.Duration
	// MaxPayload is the largest payload Append takes (default 64 KiB).
	MaxPayload int
	// Clock gives the receive time of messages without one and the "now" of
	// retention (default time.Now).
	Clock func() time.Time
	// Logger gets retention and open warnings (default slog.Default()).
	Logger *slog.Logger
	// OnCommit, if set, is called after every durable commit with the number
	// of updates it held and how long it took (see [store.Options.OnCommit]).
	OnCommit func(n int, d time.Duration)
	// IndexInterval is how often the per-gateway index catches up with the
	// log (default 200ms; see index.go). Queries see every stored message
	// whatever it is.
	IndexInterval time.Duration
}

// Store is the telemetry store. It is safe for concurrent use. See the
// package documentation for the file's layout.
type Store struct {
	db   *store.DB
	opts Options
	span int64 // partition span in seconds

	mu         sync.RWMutex
	partitions []int64 // starts (unix seconds) of existing partitions, sorted

	stopIndex chan struct{} // closed by Close: the index loop ends
	indexDone chan struct{}
	closeOnce sync.Once
}

// Open opens the telemetry file at path, creating it with mode 0600 if
// needed, and loads the list of partitions.
func Open(path string, opts Options) (*Store, error) {
	if opts.Linger == 0 {
		opts.Linger = DefaultLinger
	}
	explicitSpan := opts.Partition != 0
	if opts.Partition == 0 {
		opts.Partition = DefaultPartition
	}
	if opts.Partition < time.Second || opts.Partition%time.Second != 0 {
		return nil, fmt.Errorf("open telemetry store: partition span %v is not a whole number of seconds", opts.Partition)
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.MaxPayload <= 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.IndexInterval <= 0 {
		opts.IndexInterval = DefaultIndexInterval
	}
	// Telemetry is written far more than it is opened: commits skip the
	// free list, and a batch may hold a few thousand messages.
	db, err := store.Open(path, store.Options{Linger: opts.Linger, OnCommit: opts.OnCommit,
		MaxBatch: 4096, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("open telemetry store: %w", err)
	}
	s := &Store{db: db, opts: opts, stopIndex: make(chan struct{}), indexDone: make(chan struct{})}
	if err := s.load(explicitSpan); err != nil {
		db.Close()
		return nil, fmt.Errorf("open telemetry store %s: %w", path, err)
	}
	go s.indexLoop()
	return s, nil
}

// load reads (or, in a new file, writes) the partition span and lists the
// partitions.
func (s *Store) load(explicitSpan bool) error {
	want := int64(s.opts.Partition / time.Second)
	var span int64
	err := s.db.Update(context.Background(), func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(metaBucket)
		if err != nil {
			return err
		}
		if v := meta.Get(spanKey); v != nil {
			if len(v) != 8 || int64(binary.BigEndian.Uint64(v)) <= 0 {
				return fmt.Errorf("%w: bad partition span in meta", ErrCorrupt)
			}
			span = int64(binary.BigEndian.Uint64(v))
			return nil
		}
		span = want
		return meta.Put(spanKey, binary.BigEndian.AppendUint64(nil, uint64(want)))
	})
	if err != nil {
		return err
	}
	if span != want && explicitSpan {
		s.opts.Logger.Warn("telemetry partition span differs from the file's; keeping the file's",
			"file", s.db.Path(), "configured", s.opts.Partition, "file_span", time.Duration(span)*time.Second)
	}
	s.span = span
	return s.db.View(func(tx *bolt.Tx) error {
		c := tx.Cursor()
		for k, _ := c.Seek(partitionPfx); k != nil && bytes.HasPrefix(k, partitionPfx); k, _ = c.Next() {
			start, ok := parsePartitionKey(k)
			if !ok {
				return fmt.Errorf("%w: bad partition bucket name %q", ErrCorrupt, k)
			}
			s.partitions = append(s.partitions, start)
		}
		return nil
	})
}

// Close waits for pending appends to commit and closes the file.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopIndex)
		<-s.indexDone
		// Not needed for correctness (queries read the log past the
		// watermark), but a cleanly closed file starts fully indexed.
		if err := s.index(context.Background()); err != nil {
			s.opts.Logger.Warn("index telemetry at close", "err", err)
		}
	})
	return s.db.Close()
}

// Snapshot writes a consistent copy of the telemetry file to w, as of one
// read-only transaction, while appends go on; see [store.DB.Snapshot].
func (s *Store) Snapshot(w io.Writer) (int64, error) { return s.db.Snapshot(w) }

// Append stores m and returns once it is durable. It implements [Sink].
// A zero m.Time is replaced by the clock's now; the time is stored in UTC.
// Errors for which [Permanent] is true are about m itself; any other means
// m was not stored (closed store, ctx ended before the commit took it, disk
// failure) and may be retried.
func (s *Store) Append(ctx context.Context, m Message) error {
	if err := validGateway(m.Gateway); err != nil {
		return err
	}
	if err := validTopic(m.Gateway, m.Topic); err != nil {
		return err
	}
	if len(m.Payload) > s.opts.MaxPayload {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(m.Payload), s.opts.MaxPayload)
	}
	if m.Time.IsZero() {
		m.Time = s.opts.Clock()
	}
	if m.Time.Before(minTime) || !m.Time.Before(maxTime) {
		return fmt.Errorf("%w: %s", ErrInvalidTime, m.Time.Format(time.RFC3339))
	}
	m.Time = m.Time.UTC()
	nanos := m.Time.UnixNano()
	start := s.partitionStart(nanos)
	pkey := partitionKey(start)
	value := encodeRecord(m)

	var created bool
	err := s.db.Update(ctx, func(tx *bolt.Tx) error {
		log, _, fresh, err := partitionBuckets(tx, pkey)
		if err != nil {
			return err
		}
		created = fresh // set on every run: fn may run again
		// The log only ever grows at its end: full pages, half the splits.
		log.FillPercent = 1.0
		seq, err := log.NextSequence()
		if err != nil {
			return err
		}
		// The index follows within IndexInterval (index.go).
		return log.Put(binary.BigEndian.AppendUint64(nil, seq), value)
	})
	if err != nil {
		return fmt.Errorf("append telemetry: %w", err)
	}
	// Also when the partition was known: Prune may have dropped it between
	// the two, and the list must hold every partition in the file.
	if created {
		s.addPartition(start)
	}
	return nil
}

// partitionBuckets returns the log and idx buckets of the partition named
// pkey, creating them when the partition does not exist yet. That costs a
// seek in the root bucket, never a scan.
func partitionBuckets(tx *bolt.Tx, pkey []byte) (log, idx *bolt.Bucket, created bool, err error) {
	p := tx.Bucket(pkey)
	if p == nil {
		if p, err = tx.CreateBucket(pkey); err != nil {
			return nil, nil, false, err
		}
		if _, err = p.CreateBucket(logBucket); err != nil {
			return nil, nil, false, err
		}
		if _, err = p.CreateBucket(idxBucket); err != nil {
			return nil, nil, false, err
		}
		if err = p.Put(indexedKey, make([]byte, 8)); err != nil {
			return nil, nil, false, err
		}
		created = true
	}
	log, idx = p.Bucket(logBucket), p.Bucket(idxBucket)
	if log == nil || idx == nil {
		return nil, nil, false, fmt.Errorf("%w: partition %x lacks its log or index", ErrCorrupt, pkey)
	}
	return log, idx, created, nil
}

func (s *Store) partitionStart(nanos int64) int64 {
	sec := nanos / int64(time.Second)
	return sec - sec%s.span
}

func (s *Store) addPartition(start int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := slices.BinarySearch(s.partitions, start); !ok {
		s.partitions = slices.Insert(s.partitions, i, start)
	}
}

func partitionKey(start int64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), partitionPfx...), uint64(start))
}

func parsePartitionKey(k []byte) (int64, bool) {
	if len(k) != len(partitionPfx)+8 || !bytes.HasPrefix(k, partitionPfx) {
		return 0, false
	}
	v := binary.BigEndian.Uint64(k[len(partitionPfx):])
	if v > uint64(maxTime.Unix()) {
		return 0, false
	}
	return int64(v), true
}
