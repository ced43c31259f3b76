package telemetry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Query limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Query selects one gateway's messages for [Store.Query].
type Query struct {
	Gateway string
	// Since and Until bound the receive time, [Since, Until); a zero value
	// leaves that side open.
	Since, Until time.Time
	// Limit is the most messages returned: 0 means DefaultLimit, at most
	// MaxLimit.
	Limit int
	// Topic, if set, returns only messages of exactly this topic.
	Topic string
	// After resumes after the last message of a previous page: pass its
	// Page.Next with otherwise the same query.
	After string
}

// Page is one answer of [Store.Query], oldest message first.
type Page struct {
	Messages []Record `json:"messages"`
	// Next, when set, is the cursor for the following page ([Query.After]);
	// it is empty when no further message matches.
	Next string `json:"next,omitempty"`
}

// position is where a message sits in a gateway's index.
type position struct {
	nanos int64
	seq   uint64
}

// before orders positions as the index keys do: by time, then sequence.
func (p position) before(q position) bool {
	return p.nanos < q.nanos || p.nanos == q.nanos && p.seq < q.seq
}

// tailEntry is a record of the gateway past the index's watermark.
type tailEntry struct {
	pos    position
	seqKey []byte
}

// tailPositions returns the gateway's records past the partition's index
// watermark with a time in [from, until) and, with after, after it, in index
// order. There are at most IndexInterval's worth of records to look at.
func tailPositions(part, log *bolt.Bucket, gateway string, from, until int64, after *position) ([]tailEntry, error) {
	var out []tailEntry
	err := unindexed(part, log, func(seqKey, record []byte) error {
		gw, nanos, err := recordIndexFields(record)
		if err != nil {
			return err
		}
		pos := position{nanos: nanos, seq: binary.BigEndian.Uint64(seqKey)}
		if gw != gateway || nanos < from || nanos >= until || after != nil && !after.before(pos) {
			return nil
		}
		out = append(out, tailEntry{pos: pos, seqKey: seqKey})
		return nil
	})
	slices.SortFunc(out, func(a, b tailEntry) int {
		switch {
		case a.pos.before(b.pos):
			return -1
		case b.pos.before(a.pos):
			return 1
		}
		return 0
	})
	return out, err
}

const cursorVersion = 1

// encodeCursor makes the opaque Page.Next for p.
func encodeCursor(p position) string {
	b := []byte{cursorVersion}
	b = binary.BigEndian.AppendUint64(b, uint64(p.nanos))
	b = binary.BigEndian.AppendUint64(b, p.seq)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (position, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 17 || b[0] != cursorVersion {
		return position{}, fmt.Errorf("%w: the after cursor is not one a previous page returned", ErrInvalidQuery)
	}
	n := binary.BigEndian.Uint64(b[1:])
	if n >= uint64(maxTime.UnixNano()) {
		return position{}, fmt.Errorf("%w: the after cursor is not one a previous page returned", ErrInvalidQuery)
	}
	return position{nanos: int64(n), seq: binary.BigEndian.Uint64(b[9:])}, nil
}

// clampNanos turns a query bound into unix nanoseconds within the range
// keys can hold; a zero time gives def.
func clampNanos(t time.Time, def int64) int64 {
	switch {
	case t.IsZero():
		return def
	case t.Before(minTime):
		return 0
	case !t.Before(maxTime):
		return maxTime.UnixNano()
	}
	return t.UnixNano()
}

// Query returns the gateway's messages in q's window, oldest first, at most
// q.Limit of them, and a cursor for the next page when more match.
func (s *Store) Query(ctx context.Context, q Query) (Page, error) {
	if err := validGateway(q.Gateway); err != nil {
		return Page{}, err
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 0 || limit > MaxLimit {
		return Page{}, fmt.Errorf("%w: limit must be 1 to %d", ErrInvalidQuery, MaxLimit)
	}
	from := clampNanos(q.Since, 0)
	until := clampNanos(q.Until, maxTime.UnixNano())
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return Page{}, fmt.Errorf("%w: until must be after since", ErrInvalidQuery)
	}
	var after *position
	if q.After != "" {
		p, err := decodeCursor(q.After)
		if err != nil {
			return Page{}, err
		}
		after = &p
	}
	// The index key to seek in each partition, and a key to skip when it is
	// the cursor's own message.
	prefix := append([]byte(q.Gateway), 0)
	seek := binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(from))
	var skip []byte
	if after != nil && after.nanos >= from {
		from = after.nanos
		skip = binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(after.nanos))
		skip = binary.BigEndian.AppendUint64(skip, after.seq)
		seek = skip
	}

	var page Page
	var last position
	err := s.db.View(func(tx *bolt.Tx) error {
		page = Page{}
		root := tx.Cursor()
		n := 0
		for pk, _ := root.Seek(partitionKey(s.partitionStart(from))); pk != nil; pk, _ = root.Next() {
			start, ok := parsePartitionKey(pk)
			if !ok {
				break // past the partitions
			}
			if start*int64(time.Second) >= until {
				break
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			part := tx.Bucket(pk)
			log, idx := part.Bucket(logBucket), part.Bucket(idxBucket)
			if log == nil || idx == nil {
				return fmt.Errorf("%w: partition %x lacks its log or index", ErrCorrupt, pk)
			}
			tail, err := tailPositions(part, log, q.Gateway, from, until, after)
			if err != nil {
				return err
			}
			// The index and the records past its watermark, merged in
			// (time, sequence) order.
			c := idx.Cursor()
			k, _ := c.Seek(seek)
			for {
				var pos position
				var seqKey []byte
				inIdx := k != nil && bytes.HasPrefix(k, prefix)
				if inIdx && len(k) != len(prefix)+16 {
					return fmt.Errorf("%w: bad index key in partition %x", ErrCorrupt, pk)
				}
				if inIdx && skip != nil && bytes.Equal(k, skip) {
					k, _ = c.Next()
					continue
				}
				var ipos position
				if inIdx {
					ipos = position{
						nanos: int64(binary.BigEndian.Uint64(k[len(prefix):])),
						seq:   binary.BigEndian.Uint64(k[len(prefix)+8:]),
					}
				}
				switch {
				case inIdx && (len(tail) == 0 || ipos.before(tail[0].pos)):
					pos, seqKey = ipos, k[len(prefix)+8:]
					k, _ = c.Next()
				case len(tail) > 0:
					pos, seqKey = tail[0].pos, tail[0].seqKey
					tail = tail[1:]
				default:
					seqKey = nil
				}
				if seqKey == nil {
					break
				}
				if pos.nanos >= until {
					return nil
				}
				if n++; n%1024 == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				v := log.Get(seqKey)
				if v == nil {
					return fmt.Errorf("%w: index entry without a record in partition %x", ErrCorrupt, pk)
				}
				m, err := decodeRecord(v)
				if err != nil {
					return err
				}
				if q.Topic != "" && m.Topic != q.Topic {
					continue
				}
				if len(page.Messages) == limit {
					// One more matches: there is a next page.
					page.Next = encodeCursor(last)
					return nil
				}
				page.Messages = append(page.Messages, newRecord(m))
				last = pos
			}
		}
		return nil
	})
	if err != nil {
		return Page{}, fmt.Errorf("query telemetry: %w", err)
	}
	return page, nil
}

// Latest returns the gateway's newest message whose topic starts with
// topicPrefix ("" for any), and false when there is none. It walks the
// gateway's index backwards from the newest partition, so a prefix the
// gateway rarely publishes under costs a longer walk.
func (s *Store) Latest(ctx context.Context, gateway, topicPrefix string) (Record, bool, error) {
	if err := validGateway(gateway); err != nil {
		return Record{}, false, err
	}
	prefix := append([]byte(gateway), 0)
	end := append([]byte(gateway), 1) // just past the gateway's keys
	var rec Record
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		rec, found = Record{}, false
		root := tx.Cursor()
		pk, _ := root.Last()
		n := 0
		for ; pk != nil; pk, _ = root.Prev() {
			if _, ok := parsePartitionKey(pk); !ok {
				break // before the partitions
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			part := tx.Bucket(pk)
			log, idx := part.Bucket(logBucket), part.Bucket(idxBucket)
			if log == nil || idx == nil {
				return fmt.Errorf("%w: partition %x lacks its log or index", ErrCorrupt, pk)
			}
			// The newest match past the index's watermark, if any, then
			// the newest indexed one: the later of the two wins.
			var tailBest position
			var tailRec Message
			tailFound := false
			err := unindexed(part, log, func(seqKey, record []byte) error {
				gw, nanos, err := recordIndexFields(record)
				if err != nil || gw != gateway {
					return err
				}
				pos := position{nanos: nanos, seq: binary.BigEndian.Uint64(seqKey)}
				if tailFound && !tailBest.before(pos) {
					return nil
				}
				m, err := decodeRecord(record)
				if err != nil {
					return err
				}
				if strings.HasPrefix(m.Topic, topicPrefix) {
					tailBest, tailRec, tailFound = pos, m, true
				}
				return nil
			})
			if err != nil {
				return err
			}
			if tailFound {
				rec, found = newRecord(tailRec), true
			}
			c := idx.Cursor()
			k, _ := c.Seek(end)
			if k == nil {
				k, _ = c.Last()
			} else {
				k, _ = c.Prev()
			}
			for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
				if len(k) != len(prefix)+16 {
					return fmt.Errorf("%w: bad index key in partition %x", ErrCorrupt, pk)
				}
				if n++; n%1024 == 0 {
					if err := ctx.Err(); err != nil {
						return err
					}
				}
				v := log.Get(k[len(prefix)+8:])
				if v == nil {
					return fmt.Errorf("%w: index entry without a record in partition %x", ErrCorrupt, pk)
				}
				m, err := decodeRecord(v)
				if err != nil {
					return err
				}
				if strings.HasPrefix(m.Topic, topicPrefix) {
					pos := position{nanos: m.Time.UnixNano(), seq: binary.BigEndian.Uint64(k[len(prefix)+8:])}
					if !tailFound || tailBest.before(pos) {
						rec, found = newRecord(m), true
					}
					return nil
				}
			}
			if found {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return Record{}, false, fmt.Errorf("latest telemetry: %w", err)
	}
	return rec, found, nil
}
