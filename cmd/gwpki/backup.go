package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gwpki/gwpki/internal/apiclient"
)

type backupOptions struct {
	out string
}

func (o *backupOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.out, "out", "", "write the backup to FILE (a .tar.gz; required)")
}

func newBackupCommand() *cobra.Command {
	o := &backupOptions{}
	cmd := &cobra.Command{
		Use:   "backup --out FILE.tar.gz",
		Short: "Download a backup of the running server (admin session)",
		Long: `Download a hot backup of the running server to FILE: a tar.gz holding a
consistent snapshot of gwpki.db and telemetry.db, taken while the server
keeps serving, and config.json, stations.json, bootstrap_provisioner.json
and the CA certificates (certs/*.crt).
It never holds the secrets/ directory (the CA keys, the claim key and the
passwords): back that up separately, offline. See docs/operations.md for
restoring.
The file is written with mode 0600, checked to be a complete archive, and
only then renamed into place; the command prints its size and SHA-256 in
the form sha256sum -c reads.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func (o *backupOptions) run(cmd *cobra.Command) error {
	if o.out == "" {
		return withHint(errors.New("no --out file"), "run gwpki backup --out gwpki-backup.tar.gz")
	}
	c, err := apiclient.Load()
	if err != nil {
		return apiclientError("back up", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(o.out), "."+filepath.Base(o.out)+".*.tmp")
	if err != nil {
		return fmt.Errorf("back up: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp makes it 0600; say so anyway, the file holds the fleet.
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("back up: %w", err)
	}
	sum := sha256.New()
	n, err := c.Download(cmd.Context(), "/v1/backup", io.MultiWriter(tmp, sum))
	if err != nil {
		return apiclientError("back up", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("back up: %w", err)
	}
	if err := checkBackup(tmp); err != nil {
		return withHint(fmt.Errorf("back up: the download is not a complete backup: %w", err), "run gwpki backup again")
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("back up: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("back up: %w", err)
	}
	if err := os.Rename(tmp.Name(), o.out); err != nil {
		return fmt.Errorf("back up: %w", err)
	}
	done = true
	printBackup(cmd.OutOrStdout(), o.out, n, sum)
	return nil
}

func printBackup(w io.Writer, name string, n int64, sum hash.Hash) {
	fmt.Fprintf(w, "%s: %d bytes\n", name, n)
	fmt.Fprintf(w, "%s  %s\n", hex.EncodeToString(sum.Sum(nil)), name)
}

// checkBackup reads the whole archive in r: a transfer cut short fails the
// gzip checksum or ends early, and the archive must hold both databases.
func checkBackup(r io.Reader) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	found := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		found[h.Name] = true
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return err
		}
	}
	// The rest of the gzip stream, to its checksum.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return err
	}
	for _, name := range []string{"gwpki.db", "telemetry.db", "config.json"} {
		if !found[name] {
			return fmt.Errorf("no %s in it", name)
		}
	}
	return nil
}
