package crl

import (
	"context"
	"math/big"
	"time"
)

// Revoked is one revocation, as recorded in the CA's store.
type Revoked struct {
	// Serial is the revoked certificate's serial number. The builder copies
	// it: a source may reuse one big.Int for every record it passes.
	Serial *big.Int
	// RevokedAt is the revocation time; CRLs carry it to the second. The
	// zero time means "when the builder learnt of it".
	RevokedAt time.Time
	// Reason is the RFC 5280 CRLReason code (0 unspecified, 1 keyCompromise,
	// ..., 10 aACompromise; 7 is unused). Codes outside that set are listed
	// as unspecified.
	Reason int
	// NotAfter is the revoked certificate's expiry. Once a CRL issued after
	// it has listed the certificate, later CRLs drop it (RFC 5280 §3.3). The
	// zero time keeps the entry for good.
	NotAfter time.Time
}

// Source is the CA's store as the CRL builder sees it: every revocation
// record, and the durable CRL numbers.
type Source interface {
	// Revocations calls fn for every recorded revocation and stops at the
	// first error fn returns, returning it. [New] calls it once: the
	// builder's lists are a cache of the store, rebuilt at every start.
	Revocations(ctx context.Context, fn func(Revoked) error) error
	// NextCRLNumbers durably reserves the next CRL number of each of shards
	// in one write and returns them in the same order. Numbers must be
	// positive, fit in 20 octets, and increase strictly per shard, across
	// restarts too; gaps are fine.
	NextCRLNumbers(ctx context.Context, shards []int) ([]*big.Int, error)
}
