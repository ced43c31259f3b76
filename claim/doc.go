// Package claim implements the human side of gwpki: organisations, user
// accounts and their sessions, the device registry and its claim codes, and
// (to come) the step that makes a gateway an organisation's.
//
// Accounts: a [User] belongs to one organisation and has one [Role]
// (installer, operator or admin). Passwords are kept only as argon2id hashes
// with a per-user salt and the parameters encoded beside them, so the cost can
// be raised later without breaking existing hashes.
//
// Sessions: POST /v1/login trades a username and password for a bearer token
// of 32 random bytes. The server keeps only the token's SHA-256, with the user
// and an expiry, so a copy of the store does not hand out live sessions.
// [Accounts.RequireRole] checks the token on every request and puts the user
// in the request context ([UserFromContext]); the user is read afresh each
// time, so a role change or a disabled account takes effect at once.
//
// Login attempts are limited per username and per source address with
// counters kept in the store (never only in memory), so a restart or a second
// server node does not reset them. Wrong usernames and wrong passwords get the
// same answer after the same argon2 work, so the API does not tell which
// accounts exist.
//
// Devices: the [Registry] holds every gateway a line station has made
// (serial, model, station, birth certificate, generation, claim state),
// registered through POST /v1/devices with a station's one-time token and
// the gateway's birth certificate, idempotently so that a station can finish
// a batch after a crash. Its claim credentials, the claim secret the gateway
// computes display codes from and the label code printed at manufacturing,
// are derived with HMAC-SHA256 from the server's claim key
// ([LoadOrCreateClaimKey], secrets/claim_key) and the device's generation,
// never stored; reissuing a birth certificate bumps the generation and so
// retires the old codes. Codes ([ParseCode], [DisplayCode], [LabelCode]) are
// Crockford base32 with a mod-37 check symbol, so a mistyped symbol is
// refused as a typo before any comparison.
//
// Storage is the package's own: bbolt buckets behind the small accountStore
// and deviceStore interfaces, so that a PostgreSQL implementation can
// replace them.
package claim
