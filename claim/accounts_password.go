package claim

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// hashParams are argon2id's cost parameters, stored with every hash.
type hashParams struct {
	time    uint32 // passes over memory
	memory  uint32 // KiB
	threads uint8
	saltLen int
	keyLen  int
}

// defaultHashParams follow OWASP's argon2id minimum (19 MiB, 2 passes, one
// lane): tens of milliseconds per login, and little memory when many logins
// arrive at once.
var defaultHashParams = hashParams{time: 2, memory: 19 * 1024, threads: 1, saltLen: 16, keyLen: 32}

// Bounds on parameters read back from the store, so that a corrupt or
// tampered record cannot make a login allocate gigabytes.
const (
	maxHashMemory = 256 * 1024 // KiB
	maxHashTime   = 16
)

var errMalformedHash = errors.New("malformed password hash")

// hasher hashes and verifies passwords with argon2id. sem bounds how many
// hashes run at once: each holds params.memory KiB, and a flood of logins
// must queue rather than exhaust memory.
type hasher struct {
	params hashParams
	sem    chan struct{}
	// kdf is argon2.IDKey; tests wrap it to see that it ran.
	kdf func(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte
}

func newHasher(p hashParams, concurrency int) *hasher {
	return &hasher{params: p, sem: make(chan struct{}, concurrency), kdf: argon2.IDKey}
}

// hash returns the PHC-style encoding of password's argon2id hash under a
// fresh random salt: $argon2id$v=19$m=...,t=...,p=...$salt$key.
func (h *hasher) hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, h.params.saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key, err := h.derive(ctx, password, salt, h.params)
	if err != nil {
		return "", err
	}
	return encodeHash(h.params, salt, key), nil
}

// verify reports whether password matches encoded, comparing in constant
// time.
func (h *hasher) verify(ctx context.Context, encoded, password string) (bool, error) {
	p, salt, want, err := decodeHash(encoded)
	if err != nil {
		return false, err
	}
	got, err := h.derive(ctx, password, salt, p)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func (h *hasher) derive(ctx context.Context, password string, salt []byte, p hashParams) ([]byte, error) {
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-h.sem }()
	return h.kdf([]byte(password), salt, p.time, p.memory, p.threads, uint32(p.keyLen)), nil
}

func encodeHash(p hashParams, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func decodeHash(s string) (hashParams, []byte, []byte, error) {
	var p hashParams
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errMalformedHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, fmt.Errorf("%w: unsupported version", errMalformedHash)
	}
	_, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads)
	// Sscanf ignores trailing input; printing back catches it.
	if err != nil || fmt.Sprintf("m=%d,t=%d,p=%d", p.memory, p.time, p.threads) != parts[3] {
		return p, nil, nil, fmt.Errorf("%w: parameters", errMalformedHash)
	}
	if p.time < 1 || p.time > maxHashTime || p.threads < 1 || p.memory < 8*uint32(p.threads) || p.memory > maxHashMemory {
		return p, nil, nil, fmt.Errorf("%w: parameters out of range", errMalformedHash)
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return p, nil, nil, fmt.Errorf("%w: salt", errMalformedHash)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, fmt.Errorf("%w: key", errMalformedHash)
	}
	p.saltLen, p.keyLen = len(salt), len(key)
	return p, salt, key, nil
}
