// Package audit implements gwpki's durable audit log: who did what to which
// gateway, certificate or account, when, from where, and whether it worked.
//
// Other parts (the CA's revocations, logins, claims) call [Log.Record], or
// [Log.RecordAll] for several entries that belong together, and get the entry
// back only once it is on disk: the log shares the server's group-commit
// store, so many concurrent callers pay for one fsync between them. Each
// entry gets an increasing sequence number ([Entry.Seq]) that orders the log
// and pages through it.
//
// Operators read the log with [Log.List] or over HTTP (GET /v1/audit, see
// [Log.Routes]), newest first, a page at a time, optionally filtered by
// action, target, actor or organisation. A page filtered by target reads
// only that target's entries, through an index, however old they are; any
// other filter is checked on each entry read. A page examines at most
// [MaxScan] entries, so no request walks the whole log; its [Page.Next] says
// where to continue.
//
// Entries are bounded ([Log.Record] lists the limits) and their details must
// never hold secrets: no claim codes, tokens, passwords or keys. As a last
// line of defence, the values of detail keys that name such things are
// replaced by "[redacted]".
//
// Storage is the package's own: a bbolt bucket keyed by the big-endian
// sequence number, so appends land at the end of the B+tree and a page is a
// reverse cursor walk, and a second bucket keyed by target, 0x00 and the
// sequence number, written in the same transaction as the entry, so a
// target's page is a reverse walk over its own keys. Opening a file written
// before the index existed (or written to by a gwpki that predates it)
// indexes the entries it is missing, once. It sits behind the small entryStore interface so that
// a PostgreSQL implementation can replace it. This package imports neither
// ca nor claim: they import it.
package audit
