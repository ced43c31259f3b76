package ocsp

import (
	"crypto/x509"
	"time"
)

// ResponderCert returns the responder certificate currently signing.
func (r *Responder) ResponderCert() *x509.Certificate { return r.resp.Load().cert }

// SetTick sets Run's period.
func (r *Responder) SetTick(d time.Duration) { r.tick = d }

// CacheLen counts the cached responses.
func (r *Responder) CacheLen() int { return r.cache.len() }
