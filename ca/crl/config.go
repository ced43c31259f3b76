package crl

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Config's zero values.
const (
	DefaultShards   = 256
	DefaultInterval = time.Hour
	DefaultValidity = 24 * time.Hour
	DefaultCoalesce = time.Second
	// MaxCoalesce bounds Config.Coalesce, so that a revoked certificate is
	// listed within seconds.
	MaxCoalesce = 5 * time.Second
)

// Config is the setting of a [Builder]. Zero values mean the documented
// default.
type Config struct {
	// Issuer is the issuing CA, which signs the CRLs: it must carry the
	// cRLSign key usage and a subject key identifier. Signer is its key.
	Issuer *x509.Certificate
	Signer crypto.Signer
	// Shards is how many CRLs the revoked serials are spread over (default
	// 256, at most [MaxShards]). It must match the shard count the issuer
	// stamps into certificates.
	Shards int
	// BaseURL is where the CRLs are published, ending in "/": the
	// distribution point of shard s is BaseURL + ShardName(s) + ".crl",
	// which must be exactly the URL the certificates of that shard carry.
	BaseURL string
	// Interval is how often every shard is rebuilt (default 1h).
	Interval time.Duration
	// Validity is how long a CRL is current: nextUpdate is thisUpdate plus
	// Validity (default 24h). It must exceed Interval.
	Validity time.Duration
	// Coalesce is how long after a revocation the shards it made dirty are
	// rebuilt, together with every shard dirtied meanwhile (default 1s, at
	// most [MaxCoalesce]).
	Coalesce time.Duration
	// Logger receives rebuild failures (default slog.Default()).
	Logger *slog.Logger
	// Clock gives thisUpdate, the revocation time of records that have none,
	// and the present for cache headers (default time.Now). Scheduling uses
	// the time package's timers.
	Clock func() time.Time
	// Registerer, if set, receives the builder's metrics.
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.Shards == 0 {
		c.Shards = DefaultShards
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Validity == 0 {
		c.Validity = DefaultValidity
	}
	if c.Coalesce == 0 {
		c.Coalesce = DefaultCoalesce
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

func (c *Config) check() error {
	switch {
	case c.Issuer == nil || c.Signer == nil:
		return errors.New("issuer certificate and signer are required")
	case c.Issuer.KeyUsage&x509.KeyUsageCRLSign == 0:
		return errors.New("issuer lacks the cRLSign key usage")
	case len(c.Issuer.SubjectKeyId) == 0:
		return errors.New("issuer has no subject key identifier")
	case c.Shards < 1 || c.Shards > MaxShards:
		return fmt.Errorf("shards must be 1 to %d, not %d", MaxShards, c.Shards)
	case c.Interval < 0:
		return errors.New("interval must be positive")
	case c.Validity <= c.Interval:
		return fmt.Errorf("validity (%s) must exceed the rebuild interval (%s)", c.Validity, c.Interval)
	case c.Coalesce < 0 || c.Coalesce > MaxCoalesce:
		return fmt.Errorf("coalesce must be positive and at most %s, not %s", MaxCoalesce, c.Coalesce)
	}
	return checkBaseURL(c.BaseURL)
}

// checkBaseURL accepts an absolute http(s) URL ending in "/" whose bytes
// can be an IA5String, as a distribution point's URI must be.
func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("base URL %q: want an absolute http URL", s)
	}
	if !strings.HasSuffix(s, "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("base URL %q: want a path ending in \"/\", no query", s)
	}
	for i := range len(s) {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return fmt.Errorf("base URL %q: only printable ASCII", s)
		}
	}
	return nil
}
