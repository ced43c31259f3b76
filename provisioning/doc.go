// Package provisioning implements the production-line side of gwpki: the
// station's credentials and the one-time tokens and certificate requests it
// uses to obtain gateway birth certificates (IDevIDs) from the CA.
package provisioning
