package crl

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// serialLen is the room for a serial in an entry: 20 octets hold every
// serial RFC 5280 §4.1.2.2 allows, and every one x509.CreateCertificate
// will sign.
const serialLen = 20

// entry is one revoked certificate in a shard's list, in 40 bytes: a million
// of them take 40 MB.
type entry struct {
	revokedAt int64 // Unix seconds
	notAfter  int64 // Unix seconds; math.MaxInt64 when the record had none
	serial    [serialLen]byte
	reason    uint8
}

// newEntry packs r; now stands in for a missing revocation time.
func newEntry(r Revoked, now time.Time) (entry, error) {
	var e entry
	switch {
	case r.Serial == nil:
		return e, errors.New("no serial number")
	case r.Serial.Sign() < 0 || r.Serial.BitLen() > 8*serialLen:
		return e, fmt.Errorf("serial number %v is negative or longer than %d octets", r.Serial, serialLen)
	}
	r.Serial.FillBytes(e.serial[:])
	e.revokedAt = now.Unix()
	if !r.RevokedAt.IsZero() {
		e.revokedAt = r.RevokedAt.Unix()
	}
	e.notAfter = math.MaxInt64
	if !r.NotAfter.IsZero() {
		e.notAfter = r.NotAfter.Unix()
	}
	if validReason(r.Reason) {
		e.reason = uint8(r.Reason)
	}
	return e, nil
}

// validReason reports whether code is a CRLReason of RFC 5280 §5.3.1.
func validReason(code int) bool { return code >= 0 && code <= 10 && code != 7 }

// cmpSerial orders entries by serial number: the serials are fixed-length
// big-endian, so byte order is numeric order.
func cmpSerial(a, b entry) int { return bytes.Compare(a.serial[:], b.serial[:]) }

// sortLatest returns add sorted by serial with one entry per serial, the
// last in add's order. add is not modified.
func sortLatest(add []entry) []entry {
	type seqEntry struct {
		entry
		seq int
	}
	tmp := make([]seqEntry, len(add))
	for i, e := range add {
		tmp[i] = seqEntry{e, i}
	}
	slices.SortFunc(tmp, func(a, b seqEntry) int {
		if c := cmpSerial(a.entry, b.entry); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	out := make([]entry, 0, len(tmp))
	for _, e := range tmp {
		if n := len(out); n > 0 && out[n-1].serial == e.serial {
			out[n-1] = e.entry
		} else {
			out = append(out, e.entry)
		}
	}
	return out
}

// merge returns a new list of old and add, both sorted with one entry per
// serial. Where a serial is in both, add's record wins. Entries of old whose certificate expired
// before cutoff, the thisUpdate of the CRL that listed old, go: a CRL issued
// after their expiry has listed them. Entries of add stay for at least one
// CRL, however old their certificate.
func merge(old, add []entry, cutoff int64) []entry {
	out := make([]entry, 0, len(old)+len(add))
	i, j := 0, 0
	for i < len(old) || j < len(add) {
		var e entry
		if j == len(add) || (i < len(old) && cmpSerial(old[i], add[j]) <= 0) {
			e = old[i]
			i++
			if e.notAfter < cutoff {
				continue
			}
		} else {
			e = add[j]
			j++
		}
		if n := len(out); n > 0 && out[n-1].serial == e.serial {
			out[n-1] = e
		} else {
			out = append(out, e)
		}
	}
	return out
}
