package claim

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
)

const testAddr = "192.0.2.10:40000"

func TestLoginAndAuthenticate(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	env.mustCreate(t, "alice", "acme", RoleOperator, "correct horse")

	sess, err := env.a.login(ctx, "alice", "correct horse", testAddr)
	if err != nil {
		t.Fatalf("login(alice, right password): %v", err)
	}
	if len(sess.token) != tokenLen {
		t.Errorf("token length = %d; want %d", len(sess.token), tokenLen)
	}
	if want := env.clock.Now().Add(12 * time.Hour); !sess.expiresAt.Equal(want) {
		t.Errorf("expiresAt = %v; want %v (default TTL 12h)", sess.expiresAt, want)
	}
	if sess.user.Username != "alice" || sess.user.Role != RoleOperator {
		t.Errorf("session user = %+v; want alice, operator", sess.user)
	}
	u, _, err := env.a.authenticate(ctx, sess.token)
	if err != nil || u.Username != "alice" {
		t.Errorf("authenticate(token) = %+v, %v; want alice", u, err)
	}
	other, err := env.a.login(ctx, "alice", "correct horse", testAddr)
	if err != nil {
		t.Fatal(err)
	}
	if other.token == sess.token {
		t.Error("two logins returned the same token")
	}

	// The store keeps the token's hash, never the token or the password.
	if err := env.db.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(env.path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{sess.token, other.token, "correct horse"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("store file contains the secret %q", secret)
		}
	}
	sum := sha256.Sum256([]byte(sess.token))
	if !strings.Contains(string(raw), string(sum[:])) {
		t.Error("store file does not contain the token's SHA-256")
	}
	// Reopen so the cleanup check has an open file.
	env.db = openTestDB(t, env.path)
}

func TestAuthenticateRejects(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	env.mustCreate(t, "alice", "acme", RoleOperator, "correct horse")
	sess, err := env.a.login(ctx, "alice", "correct horse", testAddr)
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{
		"",
		"short",
		sess.token[:tokenLen-1],
		sess.token + "A",
		strings.Repeat("A", tokenLen), // well-formed, never issued
		strings.Repeat("=", tokenLen), // not base64url
		flipFirst(sess.token),         // well-formed, one symbol off
	} {
		if _, _, err := env.a.authenticate(ctx, token); !errors.Is(err, ErrInvalidSession) {
			t.Errorf("authenticate(%q) error = %v; want ErrInvalidSession", token, err)
		}
	}
}

// flipFirst changes the first symbol of a token.
func flipFirst(token string) string {
	b := []byte(token)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func TestSessionExpires(t *testing.T) {
	env := newTestEnv(t, WithSessionTTL(time.Hour))
	ctx := context.Background()
	env.mustCreate(t, "alice", "acme", RoleInstaller, "correct horse")
	sess, err := env.a.login(ctx, "alice", "correct horse", testAddr)
	if err != nil {
		t.Fatal(err)
	}
	env.clock.Advance(time.Hour - time.Second)
	if _, _, err := env.a.authenticate(ctx, sess.token); err != nil {
		t.Errorf("authenticate 1s before expiry: %v; want success", err)
	}
	env.clock.Advance(time.Second)
	if _, _, err := env.a.authenticate(ctx, sess.token); !errors.Is(err, ErrInvalidSession) {
		t.Errorf("authenticate at expiry: error = %v; want ErrInvalidSession", err)
	}
}

func TestLogoutRevokes(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	env.mustCreate(t, "alice", "acme", RoleInstaller, "correct horse")
	s1, _ := env.a.login(ctx, "alice", "correct horse", testAddr)
	s2, _ := env.a.login(ctx, "alice", "correct horse", testAddr)
	_, h1, err := env.a.authenticate(ctx, s1.token)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.a.logout(ctx, h1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.a.authenticate(ctx, s1.token); !errors.Is(err, ErrInvalidSession) {
		t.Errorf("authenticate after logout: error = %v; want ErrInvalidSession", err)
	}
	if _, _, err := env.a.authenticate(ctx, s2.token); err != nil {
		t.Errorf("other session after logout of the first: %v; want still valid", err)
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	env.mustCreate(t, "alice", "acme", RoleInstaller, "correct horse")
	env.mustCreate(t, "dora", "acme", RoleInstaller, "dora password")
	if _, err := env.a.SetDisabled(ctx, "dora", true); err != nil {
		t.Fatal(err)
	}
	// Count argon2 runs: every failure must cost one, even for a user that
	// does not exist.
	var runs atomic.Int32
	env.a.hasher.kdf = func(pw, salt []byte, time, mem uint32, threads uint8, keyLen uint32) []byte {
		runs.Add(1)
		return argon2.IDKey(pw, salt, time, mem, threads, keyLen)
	}
	for _, tc := range []struct{ user, pw string }{
		{"alice", "wrong password"},
		{"nobody", "wrong password"},
		{"dora", "dora password"}, // right password, disabled account
		{"NOT A VALID NAME", "whatever"},
	} {
		runs.Store(0)
		_, err := env.a.login(ctx, tc.user, tc.pw, testAddr)
		if !errors.Is(err, ErrInvalidCredentials) || err.Error() != ErrInvalidCredentials.Error() {
			t.Errorf("login(%q) error = %v; want exactly ErrInvalidCredentials", tc.user, err)
		}
		if n := runs.Load(); n != 1 {
			t.Errorf("login(%q) ran argon2 %d times; want 1", tc.user, n)
		}
	}
}

// TestLoginTimingSimilar checks the dummy hash really costs what a real one
// does. It compares the fastest of several runs, which load on a shared
// machine can only slow down, with a wide margin.
func TestLoginTimingSimilar(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	env := newTestEnv(t)
	ctx := context.Background()
	env.mustCreate(t, "alice", "acme", RoleInstaller, "correct horse")
	fastest := func(user string) time.Duration {
		best := time.Hour
		for i := range 5 {
			// Separate addresses and an advancing clock keep the limits out.
			env.clock.Advance(time.Hour)
			start := time.Now()
			_, err := env.a.login(ctx, user, "wrong password", fmt.Sprintf("198.51.100.%d:1", i))
			best = min(best, time.Since(start))
			if !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("login(%s) error = %v; want ErrInvalidCredentials", user, err)
			}
		}
		return best
	}
	known, unknown := fastest("alice"), fastest("nobody")
	if unknown < known/3 || known < unknown/3 {
		t.Errorf("fastest failed login: known user %v, unknown user %v; want within a factor of 3", known, unknown)
	}
}

func TestLoginRateLimitPerUser(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	env.mustCreate(t, "alice", "acme", RoleInstaller, "correct horse")
	start := env.clock.Now()
	for i := range 10 {
		// Different addresses: only the per-user limit applies.
		addr := fmt.Sprintf("203.0.113.%d:5000", i)
		if _, err := env.a.login(ctx, "alice", "wrong", addr); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: error = %v; want ErrInvalidCredentials", i+1, err)
		}
		env.clock.Advance(time.Minute)
	}
	// Even the right password is refused now, before it is checked.
	_, err := env.a.login(ctx, "alice", "correct horse", "203.0.113.200:1")
	var rl *RateLimitError
	if !errors.As(err, &rl) || !errors.Is(err, ErrRateLimited) {
		t.Fatalf("11th attempt: error = %v; want *RateLimitError", err)
	}
	// The first failure (at start) ages out at start+15m.
	if want := start.Add(15 * time.Minute).Sub(env.clock.Now()); rl.RetryAfter != want {
		t.Errorf("RetryAfter = %v; want %v", rl.RetryAfter, want)
	}
	// Another user is unaffected.
	env.mustCreate(t, "bob", "acme", RoleInstaller, "bobs password")
	if _, err := env.a.login(ctx, "bob", "bobs password", "203.0.113.200:1"); err != nil {
		t.Errorf("login(bob) while alice is limited: %v", err)
	}
	env.clock.Advance(rl.RetryAfter)
	if _, err := env.a.login(ctx, "alice", "correct horse", "203.0.113.200:1"); err != nil {
		t.Errorf("login(alice) after RetryAfter: %v; want success", err)
	}
}

func TestLoginRateLimitPersistsAcrossReopen(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	env.mustCreate(t, "alice", "acme", RoleInstaller, "correct horse")
	for i := range 10 {
		if _, err := env.a.login(ctx, "alice", "wrong", testAddr); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: error = %v", i+1, err)
		}
	}
	// A restart: close the file, open it again, build a new Accounts.
	if err := env.db.Close(); err != nil {
		t.Fatal(err)
	}
	env.db = openTestDB(t, env.path)
	env.a = env.open(t)
	env.clock.Advance(5 * time.Minute)
	_, err := env.a.login(ctx, "alice", "correct horse", testAddr)
	var rl *RateLimitError
	if !errors.As(err, &rl) {
		t.Fatalf("login after reopen: error = %v; want *RateLimitError", err)
	}
	if rl.RetryAfter != 10*time.Minute {
		t.Errorf("RetryAfter after reopen = %v; want 10m", rl.RetryAfter)
	}
}

func TestLoginRateLimitPerAddress(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	env.mustCreate(t, "alice", "acme", RoleInstaller, "correct horse")
	// 30 failures spread over many names (no per-user limit reached), from
	// addresses of one IPv6 /64.
	for i := range 30 {
		addr := fmt.Sprintf("[2001:db8:1:2::%x]:443", i+1)
		if _, err := env.a.login(ctx, fmt.Sprintf("user%d", i), "wrong", addr); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: error = %v", i+1, err)
		}
	}
	if _, err := env.a.login(ctx, "alice", "correct horse", "[2001:db8:1:2::ffff]:443"); !errors.Is(err, ErrRateLimited) {
		t.Errorf("login from the same /64 after 30 failures: error = %v; want ErrRateLimited", err)
	}
	if _, err := env.a.login(ctx, "alice", "correct horse", "[2001:db8:1:3::1]:443"); err != nil {
		t.Errorf("login from another /64: %v; want success", err)
	}
}

func TestAddressBucket(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:443":            "192.0.2.1",
		"[::ffff:192.0.2.1]:443":   "192.0.2.1",
		"[2001:db8::1]:443":        "2001:db8::/64",
		"[fe80::1%eth0]:443":       "fe80::/64",
		"2001:db8:0:0:ffff::1":     "2001:db8::/64",
		"192.0.2.7":                "192.0.2.7",
		"not an address":           "unknown",
		"[2001:db8:a:b:c:d:e:f]:1": "2001:db8:a:b::/64",
	} {
		if got := addressBucket(in); got != want {
			t.Errorf("addressBucket(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestLoginSuccessResetsUserCount(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	env.mustCreate(t, "alice", "acme", RoleInstaller, "correct horse")
	fail := func(n int) {
		t.Helper()
		for i := range n {
			addr := fmt.Sprintf("203.0.113.%d:1", i)
			if _, err := env.a.login(ctx, "alice", "wrong", addr); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("failure %d: error = %v; want ErrInvalidCredentials", i+1, err)
			}
		}
	}
	fail(9)
	if _, err := env.a.login(ctx, "alice", "correct horse", "203.0.113.100:1"); err != nil {
		t.Fatalf("login after 9 failures: %v", err)
	}
	fail(9) // would trip the limit had the success not reset it
	if _, err := env.a.login(ctx, "alice", "correct horse", "203.0.113.100:1"); err != nil {
		t.Errorf("login after reset and 9 more failures: %v; want success", err)
	}
}

func TestConcurrentGuessesStopAtLimit(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	env.mustCreate(t, "alice", "acme", RoleInstaller, "correct horse")
	var wg sync.WaitGroup
	var denied, limited atomic.Int32
	for i := range 25 {
		wg.Go(func() {
			_, err := env.a.login(ctx, "alice", "wrong", fmt.Sprintf("203.0.113.%d:1", i))
			switch {
			case errors.Is(err, ErrInvalidCredentials):
				denied.Add(1)
			case errors.Is(err, ErrRateLimited):
				limited.Add(1)
			default:
				t.Errorf("concurrent login: error = %v", err)
			}
		})
	}
	wg.Wait()
	if denied.Load() != 10 || limited.Load() != 15 {
		t.Errorf("25 concurrent guesses: %d checked, %d rate limited; want 10 and 15", denied.Load(), limited.Load())
	}
}

func TestDisableEndsSessions(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	env.mustCreate(t, "alice", "acme", RoleInstaller, "correct horse")
	sess, err := env.a.login(ctx, "alice", "correct horse", testAddr)
	if err != nil {
		t.Fatal(err)
	}
	u, err := env.a.SetDisabled(ctx, "alice", true)
	if err != nil || !u.Disabled {
		t.Fatalf("SetDisabled(alice, true) = %+v, %v", u, err)
	}
	if _, _, err := env.a.authenticate(ctx, sess.token); !errors.Is(err, ErrInvalidSession) {
		t.Errorf("authenticate after disable: error = %v; want ErrInvalidSession", err)
	}
	if n := bucketLen(t, env.db, bucketSessions); n != 0 {
		t.Errorf("sessions stored after disabling their only user = %d; want 0", n)
	}
	if _, err := env.a.SetDisabled(ctx, "alice", false); err != nil {
		t.Fatal(err)
	}
	if _, err := env.a.login(ctx, "alice", "correct horse", testAddr); err != nil {
		t.Errorf("login after enable: %v", err)
	}
	if _, err := env.a.SetDisabled(ctx, "nobody", true); !errors.Is(err, ErrUserNotFound) {
		t.Errorf("SetDisabled(nobody) error = %v; want ErrUserNotFound", err)
	}
}

func TestSweepDeletesExpired(t *testing.T) {
	env := newTestEnv(t, WithSessionTTL(time.Hour))
	ctx := context.Background()
	env.mustCreate(t, "alice", "acme", RoleInstaller, "correct horse")
	if _, err := env.a.login(ctx, "alice", "correct horse", testAddr); err != nil {
		t.Fatal(err)
	}
	if _, err := env.a.login(ctx, "ghost", "wrong", "198.51.100.1:1"); !errors.Is(err, ErrInvalidCredentials) {
		t.Fatal(err)
	}
	if got := bucketLen(t, env.db, bucketSessions); got != 1 {
		t.Fatalf("sessions = %d; want 1", got)
	}
	// user:ghost and the address of the failure.
	if got := bucketLen(t, env.db, bucketAttempts); got != 2 {
		t.Fatalf("attempt counters = %d; want 2", got)
	}
	env.clock.Advance(2 * time.Hour)
	// The next login sweeps first, deleting the expired session and the
	// stale counters; as it succeeds, its own address charge is refunded.
	if _, err := env.a.login(ctx, "alice", "correct horse", "198.51.100.2:1"); err != nil {
		t.Fatal(err)
	}
	if got := bucketLen(t, env.db, bucketSessions); got != 1 {
		t.Errorf("sessions after sweep = %d; want 1 (only the new one)", got)
	}
	if got := bucketLen(t, env.db, bucketAttempts); got != 0 {
		t.Errorf("attempt counters after sweep = %d; want 0", got)
	}
}

func TestLogsCarryNoSecrets(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	env.mustCreate(t, "alice", "acme", RoleInstaller, "correct horse")
	sess, err := env.a.login(ctx, "alice", "correct horse", testAddr)
	if err != nil {
		t.Fatal(err)
	}
	env.a.login(ctx, "alice", "wrong guess", testAddr)
	env.a.login(ctx, "Secret Typed As Name", "wrong guess", testAddr)
	logs := env.logs.String()
	for _, secret := range []string{"correct horse", "wrong guess", sess.token, "Secret Typed As Name", env.a.dummyHash} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
	for _, want := range []string{"msg=login user=alice", "msg=\"login failed\" user=alice", "reason=\"wrong password\""} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}
