package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/gwpki/gwpki/claim"
	"github.com/gwpki/gwpki/internal/apiclient"
	"github.com/gwpki/gwpki/provisioning/label"
)

type claimOptions struct {
	json bool
}

func newClaimCommand() *cobra.Command {
	o := &claimOptions{}
	cmd := &cobra.Command{
		Use:   "claim SERIAL CODE | claim GWPKI1:<serial>:<label code>",
		Short: "Claim a gateway for your organisation with the code it shows or its label's (installer session)",
		Long: "Claim the gateway SERIAL for your organisation with CODE: the display code its console shows now\n" +
			"(XXXX-XXXX-C) or the label code printed on it (XXXX-XXXX-XXXX-XXXX-C, single use). The label's QR payload,\n" +
			"GWPKI1:<serial>:<label code>, may be given alone instead. Case, hyphens and spaces do not matter; a typo\n" +
			"(a wrong check symbol) is refused before anything is sent and is never counted as an attempt.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return withHint(fmt.Errorf("claim takes a serial and a code, or a label's QR payload; got %d arguments", len(args)),
					"usage: gwpki claim SERIAL CODE")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) },
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print the claimed gateway as JSON")
	return cmd
}

// claimArgs reads SERIAL CODE, or a label's QR payload alone.
func claimArgs(args []string) (serial, code string, err error) {
	if len(args) == 2 {
		return args[0], args[1], nil
	}
	serial, code, err = label.ParsePayload(args[0])
	if errors.Is(err, label.ErrNotPayload) {
		return "", "", withHint(errors.New("claim needs a serial and a code"),
			"usage: gwpki claim SERIAL CODE, or gwpki claim GWPKI1:<serial>:<label code> from the label's QR code")
	}
	return serial, code, err
}

func (o *claimOptions) run(cmd *cobra.Command, args []string) error {
	serial, code, err := claimArgs(args)
	if err != nil {
		return err
	}
	// The check symbol is checked here too, so that a typo costs no
	// round trip; the server checks again.
	if _, err := claim.ParseCode(code); err != nil {
		return codeError(err)
	}
	c, err := apiclient.Load()
	if err != nil {
		return apiclientError("claim", err)
	}
	var ans claim.ClaimAnswer
	err = c.Do(cmd.Context(), http.MethodPost, "/v1/claims", claim.ClaimBody{Serial: serial, Code: code}, &ans)
	if err != nil {
		return claimError(serial, err)
	}
	if o.json {
		return writeJSON(cmd, ans)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "claimed %s for organisation %s (with its %s code)\n", ans.Device.Serial, ans.Device.Org, ans.Code)
	return nil
}

// codeError explains a code that does not parse.
func codeError(err error) error {
	if errors.Is(err, claim.ErrCodeTypo) {
		return withHint(errors.New("the code has a typo: its last symbol (the check) does not match"),
			"read the code again; nothing was sent or counted")
	}
	return withHint(fmt.Errorf("that is not a claim code: %w", err),
		"a display code is XXXX-XXXX-C, a label code XXXX-XXXX-XXXX-XXXX-C")
}

// claimError turns a refused claim into one line and a hint that says what
// happened and what is left.
func claimError(serial string, err error) error {
	var apiErr *apiclient.Error
	if !errors.As(err, &apiErr) {
		return apiclientError("claim", err)
	}
	var r claim.ClaimRefusal
	if json.Unmarshal(apiErr.Body, &r) != nil || r.Reason == "" {
		return apiclientError("claim", err)
	}
	switch r.Reason {
	case "wrong_code":
		left := 0
		if r.AttemptsLeft != nil {
			left = *r.AttemptsLeft
		}
		return withHint(fmt.Errorf("claim %s: wrong code (%d attempts left before back-off)", serial, left), r.Hint)
	}
	return withHint(fmt.Errorf("claim %s: %s", serial, r.Error), r.Hint)
}

func newUnclaimCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "unclaim SERIAL",
		Short: "Release a gateway from your organisation and revoke its operational certificates (operator session)",
		Long: "Release the gateway SERIAL from your organisation: its operational certificates are revoked\n" +
			"(affiliationChanged), so it must bootstrap again, and it can be claimed again with a fresh display code.\n" +
			"A used label code stays spent. A transfer to another organisation is an unclaim, then a claim.",
		Args: exactlyOneSerial,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiclient.Load()
			if err != nil {
				return apiclientError("unclaim", err)
			}
			var ans claim.UnclaimAnswer
			if err := c.Do(cmd.Context(), http.MethodPost, "/v1/devices/"+url.PathEscape(args[0])+"/unclaim", nil, &ans); err != nil {
				return apiclientError("unclaim "+args[0], err)
			}
			if asJSON {
				return writeJSON(cmd, ans)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "unclaimed %s; revoked %d operational certificate(s)\n", ans.Device.Serial, len(ans.Revoked))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newUnlockCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "unlock SERIAL",
		Short: "Lift a gateway's claim lock and back-off after failed attempts (operator session)",
		Long: "Clear the failed claim attempts of the gateway SERIAL: its lock (after 20 failures) and its back-off.\n" +
			"Someone standing at the gateway can do the same by pressing its claim button.",
		Args: exactlyOneSerial,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := apiclient.Load()
			if err != nil {
				return apiclientError("unlock", err)
			}
			var res claim.UnlockResult
			if err := c.Do(cmd.Context(), http.MethodPost, "/v1/devices/"+url.PathEscape(args[0])+"/unlock", nil, &res); err != nil {
				return apiclientError("unlock "+args[0], err)
			}
			if asJSON {
				return writeJSON(cmd, res)
			}
			fmt.Fprintln(cmd.OutOrStdout(), unlockSummary(res))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func unlockSummary(res claim.UnlockResult) string {
	state := "was not locked"
	if res.WasLocked {
		state = "was locked"
	}
	return fmt.Sprintf("unlocked %s: it %s; %d failed attempt(s) cleared", res.Serial, state, res.Failures)
}

func exactlyOneSerial(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return withHint(fmt.Errorf("%s takes exactly one serial, got %d arguments", cmd.Name(), len(args)), "usage: "+cmd.UseLine())
	}
	return nil
}

func writeJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
