package claim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/store"
)

var (
	// ErrInvalidSerial is returned by [Registry.Register] when the gateway
	// serial is not 1 to 64 of A-Z a-z 0-9 - . _ starting with a letter or
	// digit (the CA's rule for serials).
	ErrInvalidSerial = errors.New("invalid gateway serial")

	// ErrInvalidModel is returned by [Registry.Register] when the model is
	// not 1 to 64 printable characters.
	ErrInvalidModel = errors.New("invalid model")

	// ErrCertificateMismatch is returned by [Registry.Register] when the
	// birth certificate names another gateway than the serial registered.
	ErrCertificateMismatch = errors.New("birth certificate names another gateway")

	// ErrOtherStation is returned by [Registry.Register] when the gateway's
	// birth certificate was obtained by another station than the one
	// registering it: a station registers only the gateways it made.
	ErrOtherStation = errors.New("birth certificate was issued to another station")

	// ErrRegisteredWithOtherCert is returned by [Registry.Register] when
	// the serial is registered already with another birth certificate and
	// the request is not a reissue.
	ErrRegisteredWithOtherCert = errors.New("gateway registered already with another birth certificate")

	// ErrModelConflict is returned by [Registry.Register] when the serial
	// is registered already, with the same birth certificate, as another
	// model: a repeated registration must repeat the first one.
	ErrModelConflict = errors.New("gateway registered already as another model")

	// ErrReissueClaimed is returned by [Registry.Register] for a reissue
	// of a gateway that an organisation has claimed: a line station may
	// not replace a deployed gateway's birth certificate. The owning
	// organisation (or an admin) unclaims it first.
	ErrReissueClaimed = errors.New("reissue of a claimed gateway")

	// ErrReissueDecommissioned is returned by [Registry.Register] for a
	// reissue of a gateway whose registered birth certificate was revoked
	// for a reason other than superseded (gwpki revoke): decommissioned
	// gateways stay revoked.
	ErrReissueDecommissioned = errors.New("reissue of a decommissioned gateway")

	// ErrDeviceNotFound is returned by [Registry.Device] for a serial that
	// is not registered.
	ErrDeviceNotFound = errors.New("device not registered")

	// ErrInvalidDeviceQuery is returned by [Registry.Devices] for a limit
	// outside 0 to [MaxDeviceLimit], an unknown state or an overlong
	// filter.
	ErrInvalidDeviceQuery = errors.New("invalid device query")
)

// Device states.
const (
	// StateUnclaimed: registered on the line, not yet any organisation's
	// (or unclaimed since).
	StateUnclaimed = "unclaimed"
	// StateClaimed: an organisation's, by a claim with one of its codes.
	StateClaimed = "claimed"
)

// deviceStates are the states a device can be in, for query validation.
var deviceStates = []string{StateUnclaimed, StateClaimed}

// Device is a registered gateway as the registry keeps and shows it. It
// holds no secret: the claim secret and the codes are derived when needed.
type Device struct {
	// Serial is the gateway serial.
	Serial string `json:"serial"`
	// Model is the product model the line station registered.
	Model string `json:"model"`
	// Station is the line station that registered the gateway (for a
	// reissue, the one that reissued it).
	Station string `json:"station"`
	// IDevIDSerial is the serial number (decimal) of the gateway's current
	// birth certificate.
	IDevIDSerial string `json:"idevid_serial"`
	// IDevIDNotAfter is when that birth certificate expires.
	IDevIDNotAfter time.Time `json:"idevid_not_after"`
	// RegisteredAt is when the gateway was first registered.
	RegisteredAt time.Time `json:"registered_at"`
	// Generation starts at 1 and grows with every reissue; the claim
	// secret and the label code are derived from it, so a reissue
	// retires the old ones.
	Generation int `json:"generation"`
	// State is [StateUnclaimed] or [StateClaimed].
	State string `json:"state"`
	// Org is the organisation that claimed the gateway, empty until then.
	Org string `json:"org,omitempty"`
	// ClaimedAt and ClaimedBy (a username) say when and by whom the
	// gateway was claimed; only its organisation and admins see them.
	ClaimedAt time.Time `json:"claimed_at,omitzero"`
	ClaimedBy string    `json:"claimed_by,omitempty"`
	// LabelUsed: the label code of the current generation is spent.
	LabelUsed bool `json:"label_used,omitempty"`

	// Online, LastSeen and CertNotAfter are read-only fleet fields, set
	// only in the answers of GET /v1/devices and GET
	// /v1/devices/{serial}/detail when the server wired their sources
	// ([FleetSources]); they are never stored. Online: the gateway has a
	// live MQTT session (absent means offline). LastSeen: when its newest
	// stored message arrived (absent: none). CertNotAfter: the expiry of
	// its newest unrevoked operational certificate (absent: none).
	Online       bool      `json:"online,omitempty"`
	LastSeen     time.Time `json:"last_seen,omitzero"`
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
	// Revoked (fleet field): the gateway's birth certificate is revoked, so
	// it is decommissioned; absent otherwise.
	Revoked bool `json:"revoked,omitempty"`

	// ClaimLock, ClaimRetryAfter, ClaimFailures and ClaimLastFailure
	// (fleet fields, also in GET /v1/devices/{serial}) are the state of the
	// gateway's claim attempt limit ([Attempts.Gateway]). ClaimLock is
	// [ClaimLockLocked] once GatewayLock failed claims locked it until an
	// unlock, [ClaimLockBackoff] while a back-off refuses claims, absent
	// otherwise (a lock wins). ClaimRetryAfter: when the back-off ends
	// (absent when locked: a lock does not end by itself). ClaimFailures:
	// failed claims since the last successful claim or unlock (absent for
	// none). ClaimLastFailure: when the newest of them was counted; for a
	// locked gateway, when it was locked.
	ClaimLock        string    `json:"claim_lock,omitempty"`
	ClaimRetryAfter  time.Time `json:"claim_retry_after,omitzero"`
	ClaimFailures    int       `json:"claim_failures,omitempty"`
	ClaimLastFailure time.Time `json:"claim_last_failure,omitzero"`
}

// Values of [Device.ClaimLock].
const (
	// ClaimLockLocked: claims of the gateway are refused (423) until an
	// operator unlocks it or its claim button is pressed.
	ClaimLockLocked = "locked"
	// ClaimLockBackoff: claims are refused (429) until ClaimRetryAfter.
	ClaimLockBackoff = "backoff"
)

// setClaimAttempts sets d's claim lock fields from a.
func (d *Device) setClaimAttempts(a GatewayAttempts) {
	d.ClaimLock, d.ClaimRetryAfter = "", time.Time{}
	switch {
	case a.Locked:
		d.ClaimLock = ClaimLockLocked
	case !a.NextAttempt.IsZero():
		d.ClaimLock, d.ClaimRetryAfter = ClaimLockBackoff, a.NextAttempt.UTC()
	}
	d.ClaimFailures, d.ClaimLastFailure = a.Total, time.Time{}
	if a.Total > 0 && !a.LastFailure.IsZero() {
		d.ClaimLastFailure = a.LastFailure.UTC()
	}
}

// CertInfo is what the server has verified about the birth certificate
// (IDevID) a station presents: issued and stored by this CA, not revoked, a
// birth certificate.
type CertInfo struct {
	// Serial is the certificate's serial number, decimal.
	Serial string
	// GatewaySerial is the gateway serial the certificate names.
	GatewaySerial string
	// Station is the station (provisioner) that obtained the certificate.
	Station string
	// NotAfter is the certificate's expiry.
	NotAfter time.Time
}

// RegisterRequest is a line station's registration of one gateway.
type RegisterRequest struct {
	Serial string
	Model  string
	// Station is the authenticated station making the request.
	Station string
	// Cert is the gateway's birth certificate, as verified by the server.
	Cert CertInfo
	// Reissue allows replacing the birth certificate of a registered
	// gateway; the device's generation grows, so its old label and
	// display codes stop working.
	Reissue bool
	// Source is the address the request came from, for the audit log.
	Source string
}

// Credentials are a registered gateway's claim credentials, derived from
// the server's claim key on every call and never stored.
type Credentials struct {
	// ClaimSecret is the 32-byte secret the gateway computes its display
	// codes from ([DisplayCode]).
	ClaimSecret []byte
	// LabelCode is printed on the gateway's label, XXXX-XXXX-XXXX-XXXX-C.
	LabelCode string
}

// Page sizes of [Registry.Devices] and the bound on one page's work.
const (
	// DefaultDeviceLimit is the page size when [DeviceQuery.Limit] is 0.
	DefaultDeviceLimit = 100
	// MaxDeviceLimit is the largest page [Registry.Devices] returns.
	MaxDeviceLimit = 1000
	// MaxDeviceScan bounds the work of one page read from the store
	// itself. [Registry.Devices] answers from its in-memory snapshot of
	// the registry, which it scans without a bound (a pass over 100,000
	// devices takes milliseconds), so its pages are full whenever enough
	// devices match.
	MaxDeviceScan = 10000
)

// DeviceQuery selects a page of devices, sorted by serial (byte order)
// unless Sort says otherwise. The zero value is the first
// [DefaultDeviceLimit] devices.
type DeviceQuery struct {
	// After continues after the last device of a previous page: pass its
	// [DevicePage.Next], with the same Sort and Desc. Sorted by serial,
	// any serial works (devices whose serial sorts after it, or before it
	// with Desc); "" starts at the first.
	After string
	// Sort is the sort key: [SortSerial] (the default, also for ""),
	// [SortModel], [SortState], [SortOrg] or [SortRegistered]. Devices
	// with equal keys are in serial order.
	Sort string
	// Desc reverses the order (the serial tie-break too).
	Desc bool
	// Search, when not empty, keeps only the devices whose serial or model
	// contains it, ignoring case.
	Search string
	// Limit is the most devices to return: 0 means [DefaultDeviceLimit],
	// at most [MaxDeviceLimit].
	Limit int
	// State, Model and Org, when not empty, keep only the devices whose
	// field is exactly equal.
	State, Model, Org string
}

// DevicePage is one page of devices.
type DevicePage struct {
	Devices []Device `json:"devices"`
	// Next, when not empty, is the After of the next page: more devices
	// match. Empty means there are none. Sorted by serial it is the last
	// serial of the page; otherwise an opaque cursor, starting with "~".
	Next string `json:"next,omitempty"`
}

// Bounds on registrations and queries.
const (
	maxSerialLen = 64
	maxModelLen  = 64 // characters
	maxFilterLen = 256
	// maxCursorLen bounds After: an opaque cursor holds a model or an
	// organisation and a serial, base64-encoded.
	maxCursorLen   = 1024
	minClaimKeyLen = 32
)

// Registry is the device registry: every gateway a line station has made,
// with its birth certificate, model and claim state, kept in the store and
// served under /v1/devices ([Registry.Routes]). It derives each gateway's
// claim credentials from the server's claim key and stores none of them.
// It is safe for concurrent use.
type Registry struct {
	store *indexedStore
	key   []byte
	audit *audit.Log
	now   func() time.Time
	log   *slog.Logger
	// fleet supplies the read-only fleet fields; see [Registry.SetFleetSources].
	fleet FleetSources
	// retired tells whether a birth certificate was revoked for good; see
	// [Registry.SetRetiredCheck].
	retired atomic.Pointer[RetiredCheck]
}

// RetiredCheck reports whether the birth certificate with serial (decimal)
// was revoked for a reason other than superseded, which makes its gateway
// decommissioned. gwpki serve wires the CA's answer
// (ca.Authority.BirthCertificateRetired).
type RetiredCheck func(ctx context.Context, certSerial string) (bool, error)

// SetRetiredCheck sets how [Registry.Register] learns that a gateway's
// registered birth certificate was revoked for good, to refuse its reissue
// with [ErrReissueDecommissioned]. Without it, Register refuses every
// reissue of a registered gateway (fail closed).
func (r *Registry) SetRetiredCheck(f RetiredCheck) { r.retired.Store(&f) }

// NewRegistry returns the registry kept in db, creating its bucket if
// needed. key is the server's claim key (at least 32 bytes, see
// [LoadOrCreateClaimKey]); every registration is recorded in auditLog. Of
// the options, [WithClock] and [WithLogger] apply; [WithSessionTTL] has no
// effect here.
func NewRegistry(db *store.DB, key []byte, auditLog *audit.Log, opts ...Option) (*Registry, error) {
	st, err := newBoltDeviceStore(context.Background(), db)
	if err != nil {
		return nil, fmt.Errorf("open device registry: %w", err)
	}
	return newRegistry(st, key, auditLog, opts...)
}

func newRegistry(st deviceStore, key []byte, auditLog *audit.Log, opts ...Option) (*Registry, error) {
	if len(key) < minClaimKeyLen {
		return nil, fmt.Errorf("open device registry: claim key of %d bytes: want at least %d", len(key), minClaimKeyLen)
	}
	if auditLog == nil {
		return nil, errors.New("open device registry: no audit log")
	}
	o := options{clock: time.Now, logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	ist, err := newIndexedStore(context.Background(), st, o.logger)
	if err != nil {
		return nil, fmt.Errorf("open device registry: %w", err)
	}
	return &Registry{store: ist, key: slices.Clone(key), audit: auditLog, now: o.clock, log: o.logger}, nil
}

// credentials derives the claim credentials of serial in generation.
func (r *Registry) credentials(serial string, generation int) Credentials {
	return Credentials{
		ClaimSecret: ClaimSecret(r.key, serial, generation),
		LabelCode:   LabelCode(r.key, serial, generation),
	}
}

// Register registers a gateway that a line station has made, and returns
// the device, its claim credentials and whether it was new. The
// registration is durable and audited when Register returns.
//
// It is idempotent, so that a station can finish a batch after a crash:
// registering a serial again with the birth certificate it is registered
// with returns the same device and the same credentials, created false (a
// different model is refused with [ErrModelConflict]). Another birth
// certificate for a registered serial is refused with
// [ErrRegisteredWithOtherCert] unless req.Reissue is set: then the device
// takes the new certificate, the registering station and the model, and
// its generation grows by one, which retires its old claim secret, label
// code and display codes. A reissue is refused with [ErrReissueClaimed]
// when the gateway is claimed (checked in the store transaction that
// records the reissue, so a claim that raced it wins) and with
// [ErrReissueDecommissioned] when its registered birth certificate was
// revoked for a reason other than superseded ([Registry.SetRetiredCheck]).
//
// It returns errors wrapping [ErrInvalidSerial] or [ErrInvalidModel] for a
// bad request, [ErrCertificateMismatch] when the certificate names another
// gateway and [ErrOtherStation] when another station obtained it. Every
// outcome, refusals included, is recorded in the audit log as action
// "register" by "station:<name>" on the serial, with the model and the
// certificate's serial, never a code or secret. If the audit entry cannot
// be written, Register fails even though the registration stands: a retry
// finds it and is audited.
func (r *Registry) Register(ctx context.Context, req RegisterRequest) (Device, Credentials, bool, error) {
	dev, created, err := r.register(ctx, req)
	if aerr := r.auditRegister(ctx, req, dev, created, err); aerr != nil && err == nil {
		return Device{}, Credentials{}, false, fmt.Errorf("register %s: %w", req.Serial, aerr)
	}
	if err != nil {
		return Device{}, Credentials{}, false, err
	}
	if created || req.Reissue {
		r.log.Info("device registered", "serial", dev.Serial, "model", dev.Model, "station", dev.Station,
			"idevid_serial", dev.IDevIDSerial, "generation", dev.Generation, "created", created)
	}
	return dev, r.credentials(dev.Serial, dev.Generation), created, nil
}

func (r *Registry) register(ctx context.Context, req RegisterRequest) (Device, bool, error) {
	if err := validateSerial(req.Serial); err != nil {
		return Device{}, false, fmt.Errorf("register: %w", err)
	}
	if err := validateModel(req.Model); err != nil {
		return Device{}, false, fmt.Errorf("register %s: %w", req.Serial, err)
	}
	// The station and the certificate come from the server, not the
	// caller: a gap here is a bug upstream, not a refusal.
	if req.Station == "" {
		return Device{}, false, fmt.Errorf("register %s: no station", req.Serial)
	}
	if !decimal(req.Cert.Serial) || req.Cert.NotAfter.IsZero() {
		return Device{}, false, fmt.Errorf("register %s: incomplete certificate information", req.Serial)
	}
	if req.Cert.GatewaySerial != req.Serial {
		return Device{}, false, fmt.Errorf("register %s: %w", req.Serial, ErrCertificateMismatch)
	}
	if req.Cert.Station != req.Station {
		return Device{}, false, fmt.Errorf("register %s: %w", req.Serial, ErrOtherStation)
	}

	// The registered birth certificate a reissue replaces must not have
	// been revoked for good. Revocations are final, so the answer cannot
	// go stale; the transaction below makes sure it was asked of the
	// certificate it replaces.
	var checked string
	if req.Reissue {
		var err error
		if checked, err = r.checkNotRetired(ctx, req); err != nil {
			return Device{}, false, fmt.Errorf("register %s: %w", req.Serial, err)
		}
	}

	now := r.now().UTC()
	var created bool
	rec, err := r.store.update(ctx, req.Serial, func(old *deviceRecord) (deviceRecord, bool, error) {
		// Runs inside the store's transaction, perhaps more than once:
		// everything it reports is set afresh on each run.
		created = old == nil
		switch {
		case old == nil:
			return deviceRecord{
				Serial: req.Serial, Model: req.Model, Station: req.Station,
				IDevIDSerial: req.Cert.Serial, IDevIDNotAfter: req.Cert.NotAfter.UTC(),
				RegisteredAt: now, Generation: 1, State: StateUnclaimed,
			}, true, nil
		case old.IDevIDSerial == req.Cert.Serial:
			// A repeat, also of a reissue: nothing changes.
			if old.Model != req.Model {
				return *old, false, ErrModelConflict
			}
			return *old, false, nil
		case !req.Reissue:
			return *old, false, ErrRegisteredWithOtherCert
		case old.State == StateClaimed:
			return *old, false, ErrReissueClaimed
		case old.IDevIDSerial != checked:
			// Reissued since the check: refused rather than checked
			// again; the station's retry is checked afresh.
			return *old, false, errReissueRaced
		default:
			rec := *old
			rec.Model, rec.Station = req.Model, req.Station
			rec.IDevIDSerial, rec.IDevIDNotAfter = req.Cert.Serial, req.Cert.NotAfter.UTC()
			rec.Generation++
			// A new label with a new code: it has not been used.
			rec.LabelUsed = false
			return rec, true, nil
		}
	})
	if err != nil {
		return Device{}, false, fmt.Errorf("register %s: %w", req.Serial, err)
	}
	return rec.device(), created, nil
}

// errReissueRaced: the device's birth certificate changed between the
// revocation check of a reissue and its transaction.
var errReissueRaced = errors.New("the gateway was reissued concurrently; try again")

// checkNotRetired returns the serial of the birth certificate the reissue
// req replaces, after checking that it was not revoked for good; "" when
// the gateway is not registered or the registration repeats.
func (r *Registry) checkNotRetired(ctx context.Context, req RegisterRequest) (string, error) {
	old, err := r.store.device(ctx, req.Serial)
	switch {
	case errors.Is(err, ErrDeviceNotFound):
		return "", nil
	case err != nil:
		return "", err
	case old.IDevIDSerial == req.Cert.Serial:
		return old.IDevIDSerial, nil
	}
	f := r.retired.Load()
	if f == nil || *f == nil {
		return "", errors.New("no revocation check wired: reissues are refused")
	}
	retired, err := (*f)(ctx, old.IDevIDSerial)
	switch {
	case err != nil:
		return "", fmt.Errorf("revocation of birth certificate %s: %w", old.IDevIDSerial, err)
	case retired:
		return "", ErrReissueDecommissioned
	}
	return old.IDevIDSerial, nil
}

// auditRegister records the outcome of a registration.
func (r *Registry) auditRegister(ctx context.Context, req RegisterRequest, dev Device, created bool, err error) error {
	detail := map[string]string{"model": req.Model}
	if req.Cert.Serial != "" {
		detail["idevid_serial"] = req.Cert.Serial
	}
	if req.Reissue {
		detail["reissue"] = "true"
	}
	result := audit.ResultOK
	switch {
	case err == nil:
		detail["created"] = strconv.FormatBool(created)
		detail["generation"] = strconv.Itoa(dev.Generation)
	case isRegisterRefusal(err):
		result = audit.ResultRefused
		detail["reason"] = refusalReason(err)
	default:
		result = audit.ResultFailed
	}
	return r.record(ctx, req.Station, req.Serial, result, req.Source, detail)
}

// record writes one "register" entry, also when the request's context has
// ended: the registration may stand.
func (r *Registry) record(ctx context.Context, station, serial, result, source string, detail map[string]string) error {
	_, err := r.audit.Record(context.WithoutCancel(ctx), audit.Entry{
		Actor: audit.StationActor(station), Action: "register", Target: serial,
		Result: result, Source: sourceHost(source), Detail: detail,
	})
	if err != nil {
		r.log.Error("audit registration", "err", err, "station", station, "serial", serial, "result", result)
	}
	return err
}

// registerRefusals are the errors of Register that refuse a request
// (rather than fail), in the words the audit log and the API use.
var registerRefusals = []struct {
	err    error
	reason string
}{
	{ErrInvalidSerial, "invalid serial"},
	{ErrInvalidModel, "invalid model"},
	{ErrCertificateMismatch, "certificate names another gateway"},
	{ErrOtherStation, "certificate issued to another station"},
	{ErrRegisteredWithOtherCert, "registered with another certificate"},
	{ErrModelConflict, "registered as another model"},
	{ErrReissueClaimed, "reissue of a claimed gateway"},
	{ErrReissueDecommissioned, "reissue of a decommissioned gateway"},
}

func isRegisterRefusal(err error) bool { return refusalReason(err) != "" }

func refusalReason(err error) string {
	for _, r := range registerRefusals {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return ""
}

// sourceHost drops the port of a host:port address.
func sourceHost(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// Device returns the registered gateway serial, or an error wrapping
// [ErrDeviceNotFound].
func (r *Registry) Device(ctx context.Context, serial string) (Device, error) {
	rec, err := r.store.device(ctx, serial)
	if err != nil {
		return Device{}, fmt.Errorf("look up device %s: %w", serial, err)
	}
	return rec.device(), nil
}

// Devices returns a page of registered gateways in q's order. It answers
// from the registry's in-memory snapshot, which every write through this
// registry updates before returning, so a page reflects every write that
// has returned. It returns an error wrapping [ErrInvalidDeviceQuery] for a
// Limit below 0 or above [MaxDeviceLimit], an unknown State or Sort, a
// filter longer than 256 bytes, or an After that is not a Next of this
// Sort and Desc. The fleet fields (Online...) are not set: the HTTP API
// adds them to the devices of a page.
func (r *Registry) Devices(ctx context.Context, q DeviceQuery) (DevicePage, error) {
	if err := q.validate(); err != nil {
		return DevicePage{}, fmt.Errorf("list devices: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return DevicePage{}, fmt.Errorf("list devices: %w", err)
	}
	if q.Limit == 0 {
		q.Limit = DefaultDeviceLimit
	}
	sort := sortIndex(q.Sort)
	pos, err := decodeDeviceCursor(q.After, sort, q.Desc)
	if err != nil {
		return DevicePage{}, fmt.Errorf("list devices: %w: %w", ErrInvalidDeviceQuery, err)
	}
	return r.store.idx.page(q, sort, pos), nil
}

func (q DeviceQuery) validate() error {
	switch {
	case q.Limit < 0 || q.Limit > MaxDeviceLimit:
		return fmt.Errorf("%w: limit %d: want 1 to %d", ErrInvalidDeviceQuery, q.Limit, MaxDeviceLimit)
	case len(q.After) > afterLimit(q.After) || len(q.Model) > maxFilterLen || len(q.State) > maxFilterLen || len(q.Org) > maxFilterLen ||
		len(q.Search) > maxFilterLen:
		return fmt.Errorf("%w: a parameter longer than %d bytes", ErrInvalidDeviceQuery, maxFilterLen)
	case q.State != "" && !validState(q.State):
		return fmt.Errorf("%w: unknown state %q", ErrInvalidDeviceQuery, q.State)
	case sortIndex(q.Sort) < 0:
		return fmt.Errorf("%w: unknown sort %q", ErrInvalidDeviceQuery, q.Sort)
	}
	return nil
}

// afterLimit is the longest After may be: a serial (the old form) is
// bounded like a filter, an opaque cursor a little more.
func afterLimit(after string) int {
	if strings.HasPrefix(after, cursorPrefix) {
		return maxCursorLen
	}
	return maxFilterLen
}

func validState(s string) bool { return slices.Contains(deviceStates, s) }

// validateSerial reports whether s can be a gateway serial: 1 to 64 of
// A-Z a-z 0-9 - . _, starting with a letter or digit. It returns an error
// wrapping [ErrInvalidSerial] otherwise.
//
// It is the rule of ca.ValidateSerial, repeated rather than imported:
// package ca pulls in all of step-ca, which the claim service (and a
// PostgreSQL-backed node running only it) has no use for. The CA enforces
// the rule when it issues a birth certificate, and Register only takes
// serials the CA has vouched for, so this is the second line of defence;
// the two must change together.
func validateSerial(s string) error {
	if s == "" || len(s) > maxSerialLen {
		return fmt.Errorf("%w: want 1 to %d characters", ErrInvalidSerial, maxSerialLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case (c == '-' || c == '.' || c == '_') && i > 0:
		default:
			return fmt.Errorf("%w: want letters, digits, '-', '.' and '_', starting with a letter or digit", ErrInvalidSerial)
		}
	}
	return nil
}

// validateModel accepts 1 to 64 printable characters of valid UTF-8.
func validateModel(s string) error {
	n := utf8.RuneCountInString(s)
	if n == 0 || n > maxModelLen || !utf8.ValidString(s) {
		return fmt.Errorf("%w: want 1 to %d printable characters", ErrInvalidModel, maxModelLen)
	}
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return fmt.Errorf("%w: want 1 to %d printable characters", ErrInvalidModel, maxModelLen)
		}
	}
	return nil
}

// decimal reports whether s is a non-negative decimal number, as step-ca
// writes certificate serials.
func decimal(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
