package claim

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/gwpki/gwpki/internal/store"
)

// fakeClock is a settable clock for WithClock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a bytes.Buffer safe for a logger used from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testEnv is an Accounts on a store file in a temporary directory.
type testEnv struct {
	a     *Accounts
	db    *store.DB
	path  string
	clock *fakeClock
	logs  *syncBuffer
}

// openTestDB opens a store at path and, at cleanup, checks the file's
// consistency and closes it.
func openTestDB(t testing.TB, path string) *store.DB {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatalf("store.Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		// ErrClosed: the test closed it itself, to reopen the file.
		if err := db.Check(); err != nil && !errors.Is(err, store.ErrClosed) {
			t.Errorf("store consistency check: %v", err)
		}
		db.Close()
	})
	return db
}

func newTestEnv(t testing.TB, opts ...Option) *testEnv {
	t.Helper()
	env := &testEnv{path: filepath.Join(t.TempDir(), "gwpki.db"), clock: newFakeClock(), logs: &syncBuffer{}}
	env.db = openTestDB(t, env.path)
	env.a = env.open(t, opts...)
	return env
}

// open builds a new Accounts on env.db, as a server restart would.
func (env *testEnv) open(t testing.TB, opts ...Option) *Accounts {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	all := append([]Option{WithClock(env.clock.Now), WithLogger(logger)}, opts...)
	a, err := NewAccounts(env.db, all...)
	if err != nil {
		t.Fatalf("NewAccounts: %v", err)
	}
	return a
}

func (env *testEnv) mustCreate(t testing.TB, name, org string, role Role, password string) User {
	t.Helper()
	u, err := env.a.CreateUser(context.Background(), NewUser{Username: name, Org: org, Role: role, Password: password})
	if err != nil {
		t.Fatalf("CreateUser(%s): %v", name, err)
	}
	return u
}

// bucketLen counts the keys of one of the package's buckets.
func bucketLen(t testing.TB, db *store.DB, bucket []byte) int {
	t.Helper()
	n := 0
	err := db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucket).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatalf("count %s: %v", bucket, err)
	}
	return n
}

func TestRoleStringParse(t *testing.T) {
	for _, r := range []Role{RoleInstaller, RoleOperator, RoleAdmin} {
		got, err := ParseRole(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %v, %v; want %v, nil", r.String(), got, err, r)
		}
		text, err := r.MarshalText()
		if err != nil || string(text) != r.String() {
			t.Errorf("%v.MarshalText() = %q, %v; want %q", r, text, err, r.String())
		}
	}
	for _, s := range []string{"", "Admin", "root", "admin "} {
		if _, err := ParseRole(s); !errors.Is(err, ErrInvalidRole) {
			t.Errorf("ParseRole(%q) error = %v; want ErrInvalidRole", s, err)
		}
	}
	if got := Role(0).String(); got != "Role(0)" {
		t.Errorf("Role(0).String() = %q; want Role(0)", got)
	}
	if _, err := Role(0).MarshalText(); err == nil {
		t.Error("Role(0).MarshalText() succeeded; want an error")
	}
}

func TestHashAndVerify(t *testing.T) {
	ctx := context.Background()
	h := newHasher(defaultHashParams, 2)
	enc1, err := h.hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	enc2, err := h.hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc1, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash = %q; want the argon2id PHC encoding with the default parameters", enc1)
	}
	if enc1 == enc2 {
		t.Error("two hashes of one password are equal; want per-hash salts")
	}
	if strings.Contains(enc1, "correct horse") {
		t.Error("hash contains the password")
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{{"correct horse", true}, {"correct horsE", false}, {"", false}, {"correct horse ", false}} {
		ok, err := h.verify(ctx, enc1, tc.pw)
		if err != nil || ok != tc.want {
			t.Errorf("verify(%q) = %v, %v; want %v, nil", tc.pw, ok, err, tc.want)
		}
	}

	// Parameters come from the stored hash, not from the hasher's own.
	cheap := hashParams{time: 1, memory: 64, threads: 2, saltLen: 8, keyLen: 16}
	old, err := newHasher(cheap, 1).hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.verify(ctx, old, "pw"); !ok || err != nil {
		t.Errorf("verify of a hash with other parameters = %v, %v; want true, nil", ok, err)
	}
}

func TestDecodeHashRejectsMalformed(t *testing.T) {
	good := "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA"
	if _, _, _, err := decodeHash(good); err != nil {
		t.Fatalf("decodeHash(%q): %v", good, err)
	}
	for _, s := range []string{
		"",
		"$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=1x$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=999999999,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA", // memory bomb
		"$argon2id$v=19$m=64,t=1000,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=1$c2Fs$AAAAAAAAAAAAAAAAAAAAAA", // short salt
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAA",            // short key
		"$argon2id$v=19$m=64,t=1,p=1$!!!$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA$",
	} {
		if _, _, _, err := decodeHash(s); !errors.Is(err, errMalformedHash) {
			t.Errorf("decodeHash(%q) error = %v; want errMalformedHash", s, err)
		}
	}
}

func TestCreateUser(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	u := env.mustCreate(t, "alice", "acme", RoleOperator, "correct horse")
	want := User{Username: "alice", Org: "acme", Role: RoleOperator, CreatedAt: env.clock.Now()}
	if diff := cmp.Diff(want, u); diff != "" {
		t.Errorf("CreateUser mismatch (-want +got):\n%s", diff)
	}
	if _, err := env.a.CreateUser(ctx, NewUser{Username: "alice", Org: "other", Role: RoleAdmin, Password: "another password"}); !errors.Is(err, ErrUserExists) {
		t.Errorf("CreateUser(alice) again: error = %v; want ErrUserExists", err)
	}
	env.mustCreate(t, "bob", "acme", RoleInstaller, "bobs password")
	if n := bucketLen(t, env.db, bucketOrgs); n != 1 {
		t.Errorf("organisations after two users of acme = %d; want 1", n)
	}
	users, err := env.a.users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Username)
	}
	if diff := cmp.Diff([]string{"alice", "bob"}, names); diff != "" {
		t.Errorf("users (-want +got):\n%s", diff)
	}
}

func TestCreateUserRejectsBadInput(t *testing.T) {
	env := newTestEnv(t)
	ok := NewUser{Username: "alice", Org: "acme", Role: RoleInstaller, Password: "correct horse"}
	tests := []struct {
		name string
		edit func(*NewUser)
		want error
	}{
		{"empty username", func(u *NewUser) { u.Username = "" }, ErrInvalidUsername},
		{"upper case", func(u *NewUser) { u.Username = "Alice" }, ErrInvalidUsername},
		{"space", func(u *NewUser) { u.Username = "al ice" }, ErrInvalidUsername},
		{"slash", func(u *NewUser) { u.Username = "al/ice" }, ErrInvalidUsername},
		{"65 chars", func(u *NewUser) { u.Username = strings.Repeat("a", 65) }, ErrInvalidUsername},
		{"non-ASCII", func(u *NewUser) { u.Username = "alïce" }, ErrInvalidUsername},
		{"empty org", func(u *NewUser) { u.Org = "" }, ErrInvalidOrg},
		{"org with space", func(u *NewUser) { u.Org = "acme corp" }, ErrInvalidOrg},
		{"no role", func(u *NewUser) { u.Role = 0 }, ErrInvalidRole},
		{"unknown role", func(u *NewUser) { u.Role = 9 }, ErrInvalidRole},
		{"short password", func(u *NewUser) { u.Password = "1234567" }, ErrInvalidPassword},
		{"long password", func(u *NewUser) { u.Password = strings.Repeat("x", 1025) }, ErrInvalidPassword},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nu := ok
			tc.edit(&nu)
			if _, err := env.a.CreateUser(context.Background(), nu); !errors.Is(err, tc.want) {
				t.Errorf("CreateUser(%+v) error = %v; want %v", nu, err, tc.want)
			}
		})
	}
	if n := bucketLen(t, env.db, bucketUsers); n != 0 {
		t.Errorf("users stored after only bad input = %d; want 0", n)
	}
	if n := bucketLen(t, env.db, bucketOrgs); n != 0 {
		t.Errorf("organisations stored after only bad input = %d; want 0", n)
	}
	// The limits themselves are allowed.
	env.mustCreate(t, strings.Repeat("a", 64), strings.Repeat("o", 64), RoleAdmin, strings.Repeat("x", 1024))
	env.mustCreate(t, "a.b_c-9", "o", RoleAdmin, "12345678")
}

func TestGeneratePassword(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		pw, err := GeneratePassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != 24 {
			t.Errorf("GeneratePassword() = %q, %d chars; want 24", pw, len(pw))
		}
		for _, c := range pw {
			if !strings.ContainsRune(passwordAlphabet, c) {
				t.Errorf("GeneratePassword() = %q contains %q, outside the alphabet", pw, c)
			}
		}
		if seen[pw] {
			t.Errorf("GeneratePassword() repeated %q", pw)
		}
		seen[pw] = true
	}
}
