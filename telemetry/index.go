package telemetry

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The per-gateway index is written behind the log, not with it. Each
// message's own commit writes only its log record, at the end of the log's
// B+tree; every IndexInterval one update reads the log records written since
// the partition's watermark, inserts their index keys in sorted order and
// moves the watermark, all in one transaction. A message's index key
// written with the message would land on a different page of the index for
// almost every message (the keys start with the gateway, and the gateways
// of one commit are spread over the whole index), so each commit would read,
// copy and write back about one index page per message; batched, one page
// takes the keys of many messages.
//
// Nothing durable depends on the index being current: the log is the truth,
// the watermark moves only with the index keys it covers, and queries read
// the records past the watermark from the log. A crash loses no index entry,
// the next pass writes it.

// DefaultIndexInterval is [Options.IndexInterval]'s default.
const DefaultIndexInterval = 200 * time.Millisecond

// maxIndexBatch bounds the records one index pass takes from one partition,
// so that the pass stays a short transaction; the rest waits for the next.
const maxIndexBatch = 50000

// indexedKey holds, in a partition bucket, the sequence of the last log
// record whose index key is written (8 bytes big-endian).
var indexedKey = []byte("indexed")

// watermark returns the last indexed log sequence of a partition. A
// partition without one was written when each record was indexed as it was
// stored: all of it is indexed.
func watermark(part, log *bolt.Bucket) uint64 {
	v := part.Get(indexedKey)
	if len(v) != 8 {
		return log.Sequence()
	}
	return binary.BigEndian.Uint64(v)
}

// unindexed calls fn with each log record of the partition past its
// watermark, in sequence order.
func unindexed(part, log *bolt.Bucket, fn func(seqKey, record []byte) error) error {
	w := watermark(part, log)
	if w >= log.Sequence() {
		return nil
	}
	c := log.Cursor()
	for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, w+1)); k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

// indexLoop writes the index behind the log every IndexInterval until
// Close.
func (s *Store) indexLoop() {
	defer close(s.indexDone)
	t := time.NewTicker(s.opts.IndexInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stopIndex:
			return
		case <-t.C:
			if err := s.index(context.Background()); err != nil {
				s.opts.Logger.Error("index telemetry", "err", err)
			}
		}
	}
}

// index writes the index keys of the log records past every partition's
// watermark, at most maxIndexBatch per partition, and moves the
// watermarks, in one durable update.
func (s *Store) index(ctx context.Context) error {
	s.mu.RLock()
	parts := slices.Clone(s.partitions)
	s.mu.RUnlock()
	return s.db.Update(ctx, func(tx *bolt.Tx) error {
		// Runs again from scratch if the batch is retried: it reads all it
		// needs from tx.
		for _, start := range parts {
			part := tx.Bucket(partitionKey(start))
			if part == nil {
				continue // pruned meanwhile
			}
			log, idx := part.Bucket(logBucket), part.Bucket(idxBucket)
			if log == nil || idx == nil {
				return fmt.Errorf("%w: partition %d lacks its log or index", ErrCorrupt, start)
			}
			var keys [][]byte
			var last []byte
			err := unindexed(part, log, func(seqKey, record []byte) error {
				if len(keys) == maxIndexBatch {
					return errBatchFull
				}
				gateway, nanos, err := recordIndexFields(record)
				if err != nil {
					return err
				}
				keys = append(keys, indexKey(gateway, nanos, seqKey))
				last = seqKey
				return nil
			})
			if err != nil && err != errBatchFull {
				return err
			}
			if len(keys) == 0 {
				continue
			}
			slices.SortFunc(keys, bytes.Compare)
			for _, k := range keys {
				if err := idx.Put(k, nil); err != nil {
					return err
				}
			}
			if err := part.Put(indexedKey, bytes.Clone(last)); err != nil {
				return err
			}
		}
		return nil
	})
}

var errBatchFull = fmt.Errorf("index batch full")

// indexKey is the index key of a record: gateway, 0x00, unix nanos, sequence.
func indexKey(gateway string, nanos int64, seqKey []byte) []byte {
	k := make([]byte, 0, len(gateway)+17)
	k = append(k, gateway...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, uint64(nanos))
	return append(k, seqKey...)
}
