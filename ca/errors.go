package ca

import "errors"

// ErrNotInitialized is returned by [LoadConfig] and [Open] when a data
// directory has no CA yet; run gwpki init, or gwpki serve which initialises it.
var ErrNotInitialized = errors.New("data directory is not initialised")

// ErrAlreadyInitialized is returned by [Init] when the directory already
// holds a CA and Force is not set.
var ErrAlreadyInitialized = errors.New("data directory already holds a CA")

// ErrStationExists is returned by [AddStation] when a station of that name
// is already registered.
var ErrStationExists = errors.New("station already exists")

// ErrStationNotFound is returned by station operations for an unknown name.
var ErrStationNotFound = errors.New("station not found")

// ErrCertificateNotFound is returned by [DB.GetCertificate],
// [DB.GetCertificateData] and [DB.Certificate] when no certificate with that
// serial is stored. It also matches nosql's database.ErrNotFound.
var ErrCertificateNotFound error = notFoundError("certificate not found")

// ErrNotRevoked is returned by [DB.RevokedCertificate] when the serial has no
// revocation record.
var ErrNotRevoked error = notFoundError("certificate not revoked")

// ErrCRLNotFound is returned by [DB.GetCRL] before the first [DB.StoreCRL].
// It also matches nosql's database.ErrNotFound, which step-ca's CRL
// generator tests for to build the first CRL.
var ErrCRLNotFound error = notFoundError("crl not found")

// ErrGatewayNotFound is returned by [DB.RevokeGateway] when no certificate
// of that gateway serial is stored.
var ErrGatewayNotFound = errors.New("no certificate of that gateway")

// ErrAlreadyRevoked is returned by [DB.RevokeCertificate] for a certificate
// revoked before; the first revocation stands.
var ErrAlreadyRevoked = errors.New("certificate already revoked")

// ErrTokenUsed is returned by [DB.StoreBirthCertificate] when the token was
// used before; nothing is stored.
var ErrTokenUsed = errors.New("token already used")

// ErrBirthCertificateExists is returned by [DB.StoreBirthCertificate] when
// the gateway already has a birth certificate that is not revoked and the
// new one does not replace it.
var ErrBirthCertificateExists = errors.New("gateway already has a birth certificate")

// ErrGatewayDecommissioned is returned by [DB.StoreBirthCertificate] when
// every birth certificate of the gateway is revoked: a decommissioned
// gateway gets no new birth certificate, reissue or not.
var ErrGatewayDecommissioned = errors.New("gateway is decommissioned")
