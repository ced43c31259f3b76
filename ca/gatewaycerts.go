package ca

// GatewayCertificates returns what is stored about every certificate that
// names the gateway serial (birth and operational, revoked ones included),
// oldest expiry first; none is not an error. It is a read for the fleet
// view: the server shows a gateway's certificates and their status.
func (a *Authority) GatewayCertificates(gateway string) ([]CertRecord, error) {
	return a.db.CertificatesByGateway(gateway)
}
