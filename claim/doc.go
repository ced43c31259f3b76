// Package claim implements the human side of gwpki: organisations, user
// accounts and their sessions, and (with the claim codes) the step that makes
// a gateway an organisation's.
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
// Storage is the package's own: bbolt buckets behind the small accountStore
// interface, so that a PostgreSQL implementation can replace it.
package claim
