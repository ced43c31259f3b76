// Package crl publishes the issuing CA's certificate revocation lists (RFC
// 5280, DER over HTTP), sharded by serial number so that each stays small
// with a million revoked certificates.
//
// A certificate's serial modulo the shard count picks its shard ([Shard]);
// the certificate names that shard's CRL, BaseURL + [ShardName] + ".crl", as
// its CRL distribution point, and the shard's CRL carries the same URL in a
// critical issuing distribution point extension limited to end-entity
// certificates, so a relying party accepts it for exactly those certificates.
//
// The parts:
//   - [Source] is the CA's store: every revocation record, read once by [New]
//     to fill the builder's in-memory lists (a cache, rebuilt at each start),
//     and durable CRL numbers, reserved for a whole batch of shards at once.
//   - [Builder] holds each shard's sorted list of revoked serials (40 bytes an
//     entry) and its current signed CRL behind an atomic pointer.
//     [Builder.Revoked] adds a revocation and marks its shard dirty;
//     [Builder.Run] rebuilds the dirty shards [Config.Coalesce] after the
//     first revocation, so a burst costs one rebuild per shard, and every
//     shard each [Config.Interval]. Shards are built in parallel. A failed
//     rebuild keeps the previous CRL and is retried with back-off.
//   - [Builder.ServeHTTP] serves the CRLs without locks, with cache headers
//     up to the CRL's nextUpdate.
//
// An entry stays listed until a CRL issued after its certificate's expiry
// has listed it (RFC 5280 §3.3); the next rebuild drops it.
//
// Files: shard.go (shard arithmetic and names), source.go (what the store
// provides), config.go, entry.go (compact entries, merging), idp.go (the
// issuing distribution point), builder.go (loading and building), run.go
// (scheduling, coalescing, retries), http.go, metrics.go, errors.go.
package crl
