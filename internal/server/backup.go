package server

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gwpki/gwpki/ca"
	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/audit"
	"github.com/gwpki/gwpki/internal/httpapi"
)

// snapshotter is a bbolt file that copies itself consistently while in use
// ([store.DB.Snapshot], [telemetry.Store.Snapshot]).
type snapshotter interface {
	Snapshot(w io.Writer) (int64, error)
}

// backupWriteTimeout replaces the API listener's write timeout for the one
// response that may be large.
const backupWriteTimeout = 30 * time.Minute

// backupHandler serves GET /v1/backup: a tar.gz of the data directory as the
// running server sees it, for an admin. It holds gwpki.db and telemetry.db,
// each copied in one read transaction (so each is consistent, while writes
// go on), and config.json, stations.json, bootstrap_provisioner.json and
// certs/*.crt as they are on disk. It never holds secrets/: keys and
// passwords are backed up separately, offline (docs/operations.md).
//
// The two databases are copied to temporary files in the data directory
// first, because a tar header needs the size before the data; an error
// before the first byte is sent is an ordinary JSON error answer.
func backupHandler(dir string, db, telemetry snapshotter, auditLog *audit.Log, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		entry := audit.Entry{Actor: actor(r), Action: "backup", Result: audit.ResultOK, Source: sourceHost(r.RemoteAddr)}
		if u, ok := claim.UserFromContext(r.Context()); ok {
			entry.Org = u.Org
		}
		n, err := writeBackup(w, r, dir, db, telemetry)
		if err != nil {
			entry.Result = audit.ResultFailed
			log.Error("backup", "err", err, "sent", n)
		} else {
			entry.Detail = map[string]string{"bytes": strconv.FormatInt(n, 10)}
			log.Info("backup", "user", entry.Actor, "bytes", n)
		}
		if _, aerr := auditLog.Record(context.WithoutCancel(r.Context()), entry); aerr != nil {
			log.Error("audit backup", "err", aerr)
		}
	}
}

// writeBackup snapshots the databases and streams the archive to w. It
// returns the number of compressed bytes sent.
func writeBackup(w http.ResponseWriter, r *http.Request, dir string, db, telemetry snapshotter) (int64, error) {
	l := ca.Layout{Dir: dir}
	mainSnap, err := snapshotFile(dir, db)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return 0, err
	}
	defer removeTemp(mainSnap)
	telemetrySnap, err := snapshotFile(dir, telemetry)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return 0, err
	}
	defer removeTemp(telemetrySnap)
	certs, err := filepath.Glob(filepath.Join(dir, "certs", "*.crt"))
	if err != nil {
		httpapi.WriteError(w, r, err)
		return 0, err
	}
	type member struct{ name, path string }
	members := []member{
		{"gwpki.db", mainSnap.Name()},
		{"telemetry.db", telemetrySnap.Name()},
		{"config.json", l.Config()},
		{"stations.json", l.Stations()},
		{"bootstrap_provisioner.json", l.BootstrapProvisioner()},
	}
	for _, c := range certs {
		members = append(members, member{"certs/" + filepath.Base(c), c})
	}

	// The archive may take longer than the listener's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(backupWriteTimeout))
	name := "gwpki-backup-" + time.Now().UTC().Format("20060102T150405Z") + ".tar.gz"
	w.Header().Set("Content-Type", "application/gzip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)

	cw := &countingWriter{w: w}
	gz := gzip.NewWriter(cw)
	tw := tar.NewWriter(gz)
	for _, m := range members {
		if err := addFile(tw, m.name, m.path); err != nil {
			if errors.Is(err, fs.ErrNotExist) && (m.name == "stations.json" || m.name == "bootstrap_provisioner.json") {
				continue // made later: a new data directory has none yet
			}
			return cw.n, fmt.Errorf("add %s: %w", m.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return cw.n, fmt.Errorf("finish archive: %w", err)
	}
	if err := gz.Close(); err != nil {
		return cw.n, fmt.Errorf("finish archive: %w", err)
	}
	return cw.n, nil
}

// snapshotFile copies db to a new temporary file in dir (the same file
// system as the data, which has room for it), rewound for reading.
func snapshotFile(dir string, db snapshotter) (*os.File, error) {
	f, err := os.CreateTemp(dir, ".backup-*.db")
	if err != nil {
		return nil, fmt.Errorf("create snapshot file: %w", err)
	}
	if _, err := db.Snapshot(f); err != nil {
		removeTemp(f)
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		removeTemp(f)
		return nil, fmt.Errorf("rewind snapshot file: %w", err)
	}
	return f, nil
}

func removeTemp(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

// addFile adds the file at path to tw as name, mode 0600 or 0644 as the
// file has it (anything else becomes 0600).
func addFile(tw *tar.Writer, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	mode := int64(0o600)
	if fi.Mode().Perm() == 0o644 {
		mode = 0o644
	}
	if err := tw.WriteHeader(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     fi.Size(),
		Mode:     mode,
		ModTime:  time.Now().UTC().Truncate(time.Second),
		Format:   tar.FormatPAX,
	}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, fi.Size())
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// sourceHost is the host part of a request's remote address.
func sourceHost(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	return host
}
