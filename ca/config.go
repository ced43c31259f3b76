package ca

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Layout names the files of a data directory. Only gwpki init and gwpki serve
// open the database; the other files are read by commands that take --dir.
type Layout struct{ Dir string }

// Config returns the path of the gwpki configuration.
func (l Layout) Config() string { return filepath.Join(l.Dir, "config.json") }

// RootCert returns the path of the root CA certificate (PEM).
func (l Layout) RootCert() string { return filepath.Join(l.Dir, "certs", "root_ca.crt") }

// IntermediateCert returns the path of the issuing CA certificate (PEM).
func (l Layout) IntermediateCert() string {
	return filepath.Join(l.Dir, "certs", "intermediate_ca.crt")
}

// RetiredIntermediateCert returns where `gwpki ca rotate` keeps the
// certificate of the issuing CA of generation gen once it is retired. It is
// beside the current one, so backups (certs/*.crt) carry it.
func (l Layout) RetiredIntermediateCert(gen int) string {
	return filepath.Join(l.Dir, "certs", fmt.Sprintf("intermediate_ca_g%d.crt", gen))
}

// RetiredIntermediateKey returns where a retired issuing CA's key file is
// kept, encrypted with the CA password as before.
func (l Layout) RetiredIntermediateKey(gen int) string {
	return filepath.Join(l.Dir, "secrets", fmt.Sprintf("intermediate_ca_g%d_key", gen))
}

// RootKey returns the path of the encrypted root CA key.
func (l Layout) RootKey() string { return filepath.Join(l.Dir, "secrets", "root_ca_key") }

// IntermediateKey returns the path of the encrypted issuing CA key, absent
// when the key lives in a KMS.
func (l Layout) IntermediateKey() string {
	return filepath.Join(l.Dir, "secrets", "intermediate_ca_key")
}

// Password returns the path of the generated CA key password.
func (l Layout) Password() string { return filepath.Join(l.Dir, "secrets", "password") }

// AdminPassword returns the path of the first admin's password.
func (l Layout) AdminPassword() string { return filepath.Join(l.Dir, "secrets", "admin_password") }

// ClaimKey returns the path of the server key that claim codes and claim
// secrets are derived from (package claim): losing it voids every printed
// label, so it belongs in backups.
func (l Layout) ClaimKey() string { return filepath.Join(l.Dir, "secrets", "claim_key") }

// BootstrapProvisioner returns the path of the bootstrap provisioner's
// public key (see [BootstrapProvisioner]); made on the first start.
func (l Layout) BootstrapProvisioner() string {
	return filepath.Join(l.Dir, "bootstrap_provisioner.json")
}

// Telemetry returns the path of the telemetry store, a bbolt file of its
// own so that telemetry never waits on the CA's commits, nor they on it.
func (l Layout) Telemetry() string { return filepath.Join(l.Dir, "telemetry.db") }

// Stations returns the path of the station list.
func (l Layout) Stations() string { return filepath.Join(l.Dir, "stations.json") }

// Database returns the path of the bbolt database.
func (l Layout) Database() string { return filepath.Join(l.Dir, "gwpki.db") }

// Duration is a time.Duration that reads and writes as "720h".
type Duration struct{ time.Duration }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"720h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Config is the file-backed configuration of a data directory. Zero values
// mean the documented default.
type Config struct {
	// Name is the CA's common-name prefix (default "gwpki").
	Name string `json:"name"`
	// Hostnames are the DNS names and IPs of the server certificate; the
	// first one is also used in URLs stamped into certificates.
	Hostnames []string `json:"hostnames"`
	// APIAddr is the HTTPS listener (default ":8443").
	APIAddr string `json:"api_addr,omitempty"`
	// HTTPAddr is the plain HTTP listener for OCSP, CRL, health and metrics
	// (default ":8080").
	HTTPAddr string `json:"http_addr,omitempty"`
	// PublicHTTPURL is the base of the OCSP and CRL URLs in issued
	// certificates. Empty: http://<first hostname>:<HTTP listener port>.
	PublicHTTPURL string `json:"public_http_url,omitempty"`
	// IDevIDLifetime is the birth certificate lifetime (default 20 years),
	// capped by the issuing CA's own expiry.
	IDevIDLifetime Duration `json:"idevid_lifetime,omitzero"`
	// ServerCertLifetime is the lifetime of the API's TLS certificate
	// (default 24h); the server renews it at two thirds of its life.
	ServerCertLifetime Duration `json:"server_cert_lifetime,omitzero"`
	// CRLShards is how many CRLs the revoked serials are spread over
	// (default 256). It is fixed at init: issued certificates name their shard.
	CRLShards int `json:"crl_shards,omitempty"`
	// CommitLinger is how long the store waits for more writes before it
	// commits a batch that is not full (default 1ms): under load it turns
	// many small commits, each with two fsyncs, into a few larger ones.
	// "0s" commits at once.
	CommitLinger *Duration `json:"commit_linger,omitempty"`
	// KMS is the PKCS#11 URI of the module holding the issuing key; empty
	// when the key is an encrypted file.
	KMS string `json:"kms,omitempty"`
	// IntermediateKey is the issuing key's name in the KMS ("pkcs11:id=...").
	IntermediateKey string `json:"intermediate_key,omitempty"`
	// IssuerGeneration counts the rotations of the issuing CA (`gwpki ca
	// rotate`): 0 for the one gwpki init made. It places the current
	// issuing CA's CRLs: /crl/ for generation 0, /crl/g<N>/ after.
	IssuerGeneration int `json:"issuer_generation,omitempty"`
	// RetiredIssuers are the issuing CAs that rotations replaced. They
	// issue nothing more, but what they issued stays trusted, and they keep
	// answering OCSP and publishing CRLs for it until they expire.
	RetiredIssuers []RetiredIssuer `json:"retired_issuers,omitempty"`
	// PasswordInDir is true when the CA key password was generated into
	// secrets/password; otherwise serve needs --password-file.
	PasswordInDir bool `json:"password_in_dir"`
	// MQTTAddr is the broker's TLS listener (default ":8883").
	MQTTAddr string `json:"mqtt_addr,omitempty"`
	// MQTTEndpoints are the broker endpoints gateways are sent to
	// (mqtts://host:port), each gateway to one by rendezvous hashing of its
	// serial. Empty: this server's own broker, mqtts://<first
	// hostname>:<MQTT port>.
	MQTTEndpoints []string `json:"mqtt_endpoints,omitempty"`
	// OperationalLifetime is the lifetime of operational certificates
	// (default 7 days); gateways renew at two thirds of it.
	OperationalLifetime Duration `json:"operational_lifetime,omitzero"`
	// TelemetryRetention is how long telemetry is kept (default 30 days).
	TelemetryRetention Duration `json:"telemetry_retention,omitzero"`
	// ClaimLimits tunes the claim attempt limits (docs/claiming.md);
	// absent or zero fields keep the defaults of DESIGN.md.
	ClaimLimits ClaimLimits `json:"claim_limits,omitzero"`
	// MQTTLimits are the broker's limits (config_mqtt.go, docs/broker.md).
	MQTTLimits MQTTLimits `json:"mqtt_limits,omitzero"`
}

// RetiredIssuer is an issuing CA replaced by a rotation. Its certificate
// is [Layout.RetiredIntermediateCert] of its generation; its key is
// [Layout.RetiredIntermediateKey] or, with a KMS, KMSKey.
type RetiredIssuer struct {
	Generation int       `json:"generation"`
	KMSKey     string    `json:"kms_key,omitempty"`
	RetiredAt  time.Time `json:"retired_at"`
	NotAfter   time.Time `json:"not_after"` // the CA certificate's, for operators
}

// CRLPath is where the CRLs of the issuing CA of generation gen are
// published on the HTTP listener: /crl/ for the first, /crl/g<N>/ for the
// later ones, so that each issuer's shards have URLs of their own.
func CRLPath(gen int) string {
	if gen == 0 {
		return "/crl/"
	}
	return fmt.Sprintf("/crl/g%d/", gen)
}

// ClaimLimits are the claim attempt limits as config.json spells them.
// The claim package owns their meaning and defaults (claim.Limits); this
// only carries them from the file.
type ClaimLimits struct {
	GatewayWindow     Duration `json:"gateway_window,omitzero"`
	GatewayFree       int      `json:"gateway_free,omitempty"`
	GatewayBackoff    Duration `json:"gateway_backoff,omitzero"`
	GatewayMaxBackoff Duration `json:"gateway_max_backoff,omitzero"`
	GatewayLock       int      `json:"gateway_lock,omitempty"`
	UserWindow        Duration `json:"user_window,omitzero"`
	UserMax           int      `json:"user_max,omitempty"`
	SourceWindow      Duration `json:"source_window,omitzero"`
	SourceMax         int      `json:"source_max,omitempty"`
}

// Defaults for Config's zero values.
const (
	DefaultAPIAddr        = ":8443"
	DefaultHTTPAddr       = ":8080"
	DefaultMQTTAddr       = ":8883"
	DefaultIDevIDLifetime = 20 * 365 * 24 * time.Hour
	DefaultCRLShards      = 256
	DefaultCommitLinger   = 1 * time.Millisecond
)

// DefaultHostnames are used when init is given no --hostname.
var DefaultHostnames = []string{"localhost", "127.0.0.1", "::1"}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = "gwpki"
	}
	if len(c.Hostnames) == 0 {
		c.Hostnames = append([]string(nil), DefaultHostnames...)
	}
	if c.APIAddr == "" {
		c.APIAddr = DefaultAPIAddr
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.MQTTAddr == "" {
		c.MQTTAddr = DefaultMQTTAddr
	}
	if c.IDevIDLifetime.Duration == 0 {
		c.IDevIDLifetime.Duration = DefaultIDevIDLifetime
	}
	if c.CommitLinger == nil {
		c.CommitLinger = &Duration{DefaultCommitLinger}
	}
	if c.ServerCertLifetime.Duration <= 0 {
		c.ServerCertLifetime.Duration = DefaultServerCertLifetime
	}
	if c.CRLShards == 0 {
		c.CRLShards = DefaultCRLShards
	}
}

// LoadConfig reads the configuration of the data directory dir.
func LoadConfig(dir string) (*Config, error) {
	l := Layout{dir}
	b, err := os.ReadFile(l.Config())
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no config.json", ErrNotInitialized, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", l.Config(), err)
	}
	c.setDefaults()
	if c.CRLShards < 1 || c.CRLShards > 65536 {
		return nil, fmt.Errorf("parse %s: crl_shards must be 1 to 65536", l.Config())
	}
	return &c, nil
}

func (c *Config) save(dir string) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(Layout{dir}.Config(), append(b, '\n'), 0o644)
}

// writeFileAtomic writes data to a temporary file, syncs it and renames it
// over path, so readers see the old or the new file, never half of one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
