package main

import (
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func buildVersion() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "devel"
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "gwpki",
		Short:         "PKI and device provisioning for fleets of IoT gateways",
		Version:       buildVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newInitCommand(),
		newServeCommand(),
		newStationCommand(),
		newLoginCommand(),
		newUserCommand(),
		newDBCommand(),
		newAuditCommand(),
		newRevokeCommand(),
		newDevicesCommand(),
		newProvisionCommand(),
		newGatewayCommand(),
		newClaimCommand(),
		newUnclaimCommand(),
		newUnlockCommand(),
		newTelemetryCommand(),
		newTUICommand(),
		newBackupCommand(),
		newDemoCommand(),
		newCACommand(),
	)
	return root
}

// hintError is an error that carries a suggestion for the user.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// withHint attaches a hint line to err.
func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hintError{err: err, hint: hint}
}

// printError prints err as "gwpki: ..." and, when known, a "hint: ..." line.
func printError(w io.Writer, err error) {
	msg := strings.TrimSpace(err.Error())
	fmt.Fprintf(w, "gwpki: %s\n", msg)
	var h *hintError
	if errors.As(err, &h) && h.hint != "" {
		fmt.Fprintf(w, "hint: %s\n", h.hint)
	}
}
