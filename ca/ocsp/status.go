package ocsp

import (
	"context"
	"math/big"
	"time"

	xocsp "golang.org/x/crypto/ocsp"
)

// Status is a certificate's revocation status as the responder reports it.
// The zero value is Unknown, so a [Source] that forgets to set it never
// vouches for a certificate by accident.
type Status int

const (
	// Unknown: this CA never issued the serial (or the source cannot tell).
	Unknown Status = iota
	// Good: issued by this CA and not revoked.
	Good
	// Revoked: revoked at Entry.RevokedAt for Entry.Reason.
	Revoked
)

func (s Status) String() string {
	switch s {
	case Unknown:
		return "unknown"
	case Good:
		return "good"
	case Revoked:
		return "revoked"
	}
	return "invalid"
}

// wire is the status as x/crypto/ocsp encodes it.
func (s Status) wire() int {
	switch s {
	case Good:
		return xocsp.Good
	case Revoked:
		return xocsp.Revoked
	}
	return xocsp.Unknown
}

// Entry is what a [Source] knows about one serial number.
type Entry struct {
	Status Status
	// RevokedAt and Reason are read only when Status is Revoked. Reason is
	// an RFC 5280 CRLReason code (0 unspecified, 1 keyCompromise, ...);
	// unspecified is left out of the response, as RFC 5280 asks.
	RevokedAt time.Time
	Reason    int
}

// Source answers from the CA's store. Lookup returns an Entry with Status
// Unknown for a serial this CA never issued, and an error only when it
// cannot answer (the responder then says internalError and logs the error).
//
// A revocation must be in the Source before [Responder.Revoked] is called
// for it: the responder's cache may be rebuilt from the Source at any time.
type Source interface {
	Lookup(ctx context.Context, serial *big.Int) (Entry, error)
}

// SourceFunc adapts a function to [Source].
type SourceFunc func(ctx context.Context, serial *big.Int) (Entry, error)

// Lookup calls f.
func (f SourceFunc) Lookup(ctx context.Context, serial *big.Int) (Entry, error) {
	return f(ctx, serial)
}

// validReason reports whether code is a CRLReason an OCSP response may carry
// (0 to 10; 7 is not assigned).
func validReason(code int) bool {
	return code >= xocsp.Unspecified && code <= xocsp.AACompromise && code != 7
}
