package ca

import (
	"context"
	"errors"
	"fmt"
)

// ClaimedFunc reports whether a gateway is claimed by an organisation. gwpki
// serve wires the device registry's answer ([Authority.SetClaimed]).
type ClaimedFunc func(ctx context.Context, gateway string) (bool, error)

// SetClaimed sets how the sign endpoint learns whether a gateway is
// claimed: a station's reissue of a claimed gateway is refused (409) before
// anything is signed, so that a station cannot mint a birth certificate for
// a gateway deployed in an organisation. Until it is set, the sign endpoint
// refuses every reissue of a gateway that has a birth certificate (fail
// closed). The device registry repeats the check, authoritatively, when the
// station registers the new certificate.
func (a *Authority) SetClaimed(f ClaimedFunc) { a.claimed.Store(&f) }

// reissueClaimed reports whether a reissue of gateway must be refused
// because it is claimed, or cannot be known to be unclaimed.
func (a *Authority) reissueClaimed(ctx context.Context, gateway string) (bool, error) {
	f := a.claimed.Load()
	if f == nil || *f == nil {
		return false, errors.New("no claim check wired: reissues are refused")
	}
	claimed, err := (*f)(ctx, gateway)
	if err != nil {
		return false, fmt.Errorf("is gateway %s claimed: %w", gateway, err)
	}
	return claimed, nil
}

// BirthCertificateRetired reports whether the certificate with serial
// (decimal) was revoked for a reason other than superseded: revoked by an
// operator (gwpki revoke), not replaced by a reissue. The device registry
// asks it of a gateway's registered birth certificate before accepting a
// reissue: a gateway whose registered birth certificate was revoked that way
// is decommissioned and stays so. A certificate not stored or not revoked is
// not retired.
func (a *Authority) BirthCertificateRetired(serial string) (bool, error) {
	rec, err := a.db.Certificate(serial)
	switch {
	case errors.Is(err, ErrCertificateNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return rec.Revoked != nil && rec.Revoked.ReasonCode != int(ReasonSuperseded), nil
}
