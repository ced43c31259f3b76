// Package ocsp implements gwpki's OCSP responder (RFC 6960, with the
// RFC 5019 profile for high-volume, pre-signed responses) for one issuing
// CA. It knows nothing of the CA's store: a [Source] tells it a serial's
// status, and the CA calls [Responder.Revoked] the moment it revokes one.
//
// The parts:
//   - cert.go issues the delegated responder certificate: a fresh P-256
//     key that never leaves memory, a certificate from the issuing CA with
//     id-kp-OCSPSigning and id-pkix-ocsp-nocheck, rotated when a third of
//     its lifetime is left. Every response carries it, so a client needs
//     only the issuer (or the root) to verify.
//   - cache.go holds signed responses keyed by (CertID hash algorithm,
//     serial), each with its HTTP headers already formatted, so a cache hit
//     writes bytes and signs nothing. Unknown answers are never cached.
//   - responder.go answers: a hit is served until half its validity has
//     passed and then re-signed on first use, so nothing served is ever past
//     its nextUpdate; a miss asks the Source, signs and caches. Revoked
//     replaces the cached responses before it returns, and a lookup that
//     read "good" before the revocation cannot cache over it.
//   - http.go is the HTTP face (GET and POST, cache headers, 304);
//     request.go reads the request, the usual one-CertID shape without
//     allocating and anything else with x/crypto/ocsp; limits.go has the
//     size limits and the global limit on Unknown answers, past which
//     clients are told tryLater.
//
// Mounting: serve [Responder] at /ocsp and /ocsp/*, on a router that does
// not clean paths (chi does not; net/http's ServeMux redirects a path with
// "//", which base64 may contain, so put it behind a prefix match that does
// not clean, or strip the prefix before the mux sees it). Run
// [Responder.Run] beside it for rotation and expiry.
package ocsp
