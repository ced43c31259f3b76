package claim

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// tokenBytes is the entropy of a session token; encoded in unpadded
// base64url it is tokenLen characters.
const (
	tokenBytes = 32
	tokenLen   = 43
)

// attemptLimit allows max failed attempts within any window.
type attemptLimit struct {
	max    int
	window time.Duration
}

// loginLimits bound password guessing against one account (perUser) and from
// one network (perAddr), whichever trips first.
type loginLimits struct {
	perUser, perAddr attemptLimit
}

var defaultLoginLimits = loginLimits{
	perUser: attemptLimit{max: 10, window: 15 * time.Minute},
	perAddr: attemptLimit{max: 30, window: 15 * time.Minute},
}

// attemptKey names one attempt counter in the store and its limit.
type attemptKey struct {
	key   string
	limit attemptLimit
}

// session is what a successful login hands back. The token exists only here
// and in the client: the store has its hash.
type session struct {
	token     string
	expiresAt time.Time
	user      User
}

// login checks username and password and opens a session. remoteAddr is the
// client's address (host:port or host) for the per-address limit. Failures
// are [ErrInvalidCredentials] whatever the reason, or a [*RateLimitError].
func (a *Accounts) login(ctx context.Context, username, password, remoteAddr string) (session, error) {
	if len(password) > maxPasswordLen {
		return session{}, fmt.Errorf("log in: %w: longer than %d bytes", ErrInvalidPassword, maxPasswordLen)
	}
	now := a.now()
	a.maybeSweep(ctx, now)

	addrKey := "addr:" + addressBucket(remoteAddr)
	keys := []attemptKey{{key: addrKey, limit: a.limits.perAddr}}
	// A name that breaks the rules cannot exist; it counts against the
	// address only, and never reaches the logs (it may be a password typed
	// in the wrong field).
	logName := "(invalid)"
	validUser := validName(username)
	var userKey string
	if validUser {
		logName = username
		userKey = "user:" + username
		keys = append(keys, attemptKey{key: userKey, limit: a.limits.perUser})
	}

	// The attempt is counted before the password is checked, so that
	// concurrent guesses cannot overshoot the limit; a success takes it back.
	if err := a.store.chargeAttempt(ctx, keys, now); err != nil {
		var rl *RateLimitError
		if errors.As(err, &rl) {
			a.log.Warn("login refused", "user", logName, "addr", remoteAddr, "reason", "rate limited")
			return session{}, err
		}
		return session{}, fmt.Errorf("count login attempt: %w", err)
	}

	rec, err := userRecord{}, ErrUserNotFound
	if validUser {
		rec, err = a.store.user(ctx, username)
		if err != nil && !errors.Is(err, ErrUserNotFound) {
			return session{}, fmt.Errorf("look up user: %w", err)
		}
	}
	hash, reason := rec.PasswordHash, ""
	if err != nil {
		// Same argon2 work as for a real user, so timing does not tell.
		hash, reason = a.dummyHash, "unknown user"
	}
	ok, verr := a.hasher.verify(ctx, hash, password)
	switch {
	case verr != nil:
		return session{}, fmt.Errorf("verify password: %w", verr)
	case reason != "":
	case !ok:
		reason = "wrong password"
	case rec.Disabled:
		reason = "account disabled"
	}
	if reason != "" {
		a.log.Warn("login failed", "user", logName, "addr", remoteAddr, "reason", reason)
		return session{}, ErrInvalidCredentials
	}

	user, err := rec.user()
	if err != nil {
		return session{}, err
	}
	token, tokenHash, err := newToken()
	if err != nil {
		return session{}, err
	}
	// Whole seconds: the expiry is shown to users in RFC 3339.
	issued := a.now().UTC().Truncate(time.Second)
	sess := sessionRecord{Username: username, CreatedAt: issued, ExpiresAt: issued.Add(a.ttl)}
	if err := a.store.loginSucceeded(ctx, tokenHash, sess, []string{userKey}, addrKey, now); err != nil {
		return session{}, fmt.Errorf("store session: %w", err)
	}
	a.log.Info("login", "user", username, "role", user.Role.String(), "addr", remoteAddr)
	return session{token: token, expiresAt: sess.ExpiresAt, user: user}, nil
}

// authenticate returns the user whose live session token is, and the
// token's hash. Every failure to authenticate is [ErrInvalidSession].
func (a *Accounts) authenticate(ctx context.Context, token string) (User, []byte, error) {
	tokenHash, ok := hashToken(token)
	if !ok {
		return User{}, nil, ErrInvalidSession
	}
	// The lookup is by hash, so its timing reveals nothing usable about
	// the token; no constant-time compare is needed.
	sess, rec, err := a.store.session(ctx, tokenHash)
	if err != nil {
		return User{}, nil, err
	}
	if !a.now().Before(sess.ExpiresAt) || rec.Disabled {
		return User{}, nil, ErrInvalidSession
	}
	u, err := rec.user()
	if err != nil {
		return User{}, nil, err
	}
	return u, tokenHash, nil
}

// logout ends the session whose token hashes to tokenHash.
func (a *Accounts) logout(ctx context.Context, tokenHash []byte) error {
	if err := a.store.deleteSession(ctx, tokenHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// maybeSweep deletes expired sessions and stale attempt counters once per
// sweepInterval, so the store does not grow with every login ever made.
func (a *Accounts) maybeSweep(ctx context.Context, now time.Time) {
	a.sweepMu.Lock()
	due := !now.Before(a.nextSweep)
	if due {
		a.nextSweep = now.Add(sweepInterval)
	}
	a.sweepMu.Unlock()
	if !due {
		return
	}
	window := max(a.limits.perUser.window, a.limits.perAddr.window)
	if err := a.store.sweep(ctx, now, window); err != nil {
		// Only housekeeping: the next sweep tries again.
		a.log.Error("sweep sessions", "err", err)
	}
}

// newToken returns a fresh bearer token and the SHA-256 under which it is
// stored.
func newToken() (string, []byte, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("generate token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	return token, sum[:], nil
}

// hashToken returns the store key of a well-formed token.
func hashToken(token string) ([]byte, bool) {
	if len(token) != tokenLen {
		return nil, false
	}
	if b, err := base64.RawURLEncoding.Strict().DecodeString(token); err != nil || len(b) != tokenBytes {
		return nil, false
	}
	sum := sha256.Sum256([]byte(token))
	return sum[:], true
}

// addressBucket is what the per-address limit counts by: the IP, or for IPv6
// its /64, since one host commonly holds a whole /64.
func addressBucket(remoteAddr string) string {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		addr = ap.Addr()
	} else if ip, err := netip.ParseAddr(remoteAddr); err == nil {
		addr = ip
	} else {
		return "unknown"
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}
