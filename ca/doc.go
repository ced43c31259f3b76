// Package ca implements gwpki's certificate authority: step-ca's authority and
// HTTP API embedded in gwpki's server, on gwpki's own durable store, with one
// JWK provisioner per production-line station that may only issue
// certificates of the gateway birth-certificate (IDevID) profile.
//
// The parts:
//   - [Init] creates a data directory: root and issuing CA, configuration.
//   - [Config] and [Layout] describe what lives in that directory.
//   - [Authority] builds the step-ca authority from the directory, serves its
//     API, and rebuilds it when the station list changes.
//   - [DB] is step-ca's db.AuthDB on bbolt with group commit.
//   - stations.go holds the station list and the provisioner that enforces
//     the IDevID profile; issuer.go signs, clamping lifetimes to the issuing
//     CA and stamping revocation URLs on gateway leaves.
package ca
