package apiclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"time"
)

// ConfigDirEnv names the environment variable that, when set, replaces
// os.UserConfigDir()/gwpki as the directory of the session file.
const ConfigDirEnv = "GWPKI_CONFIG_DIR"

var (
	// ErrNotLoggedIn is returned by [Load] when there is no session file.
	ErrNotLoggedIn = errors.New("not logged in")
	// ErrSessionExpired is returned by [Load] when the saved session's
	// token has expired.
	ErrSessionExpired = errors.New("session expired")
)

// Session is what a login leaves on disk. The token is a credential: the
// file is written with mode 0600 in a 0700 directory.
type Session struct {
	Server    string    `json:"server"`
	RootPEM   string    `json:"root_pem"`
	Username  string    `json:"username"`
	Org       string    `json:"org,omitempty"`
	Role      string    `json:"role,omitempty"`
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// SessionPath returns where the session is kept: $GWPKI_CONFIG_DIR/session.json
// or else os.UserConfigDir()/gwpki/session.json.
func SessionPath() (string, error) {
	dir := os.Getenv(ConfigDirEnv)
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("find config directory: %w", err)
		}
		dir = filepath.Join(base, "gwpki")
	}
	return filepath.Join(dir, "session.json"), nil
}

func loadSession(path string) (Session, error) {
	var s Session
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, ErrNotLoggedIn
	}
	if err != nil {
		return s, fmt.Errorf("read session: %w", err)
	}
	// Like ssh with private keys: a token others can read is refused
	// rather than used.
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return s, fmt.Errorf("read session: %s is accessible by other users (mode %v); run chmod 600 on it or log in again", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("read session: %w", err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("read session %s: %w", path, err)
	}
	if s.Server == "" || s.Token == "" || s.RootPEM == "" {
		return s, fmt.Errorf("read session %s: incomplete; log in again", path)
	}
	return s, nil
}

// saveSession writes s atomically: a crash leaves the old session or the new
// one, never half a file.
func saveSession(path string, s Session) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	f, err := os.CreateTemp(dir, ".session-*.json")
	if err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save session: %w", err)
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("save session: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save session: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save session: %w", err)
	}
	return nil
}

func removeSession(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove session: %w", err)
	}
	return nil
}
