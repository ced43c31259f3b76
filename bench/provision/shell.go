package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
)

// stepCLI is the step CLI the shell loop runs.
type stepCLI struct {
	path    string
	version string // the first line of `step version`
}

// findStep returns the step CLI: bin, else step on PATH, else in
// $(go env GOPATH)/bin (where `make test` installs it).
func findStep(ctx context.Context, bin string) (*stepCLI, error) {
	path := bin
	if path == "" {
		if p, err := exec.LookPath("step"); err == nil {
			path = p
		} else if out, err := exec.CommandContext(ctx, "go", "env", "GOPATH").Output(); err == nil {
			gopath, _, _ := strings.Cut(strings.TrimSpace(string(out)), string(os.PathListSeparator))
			if p := filepath.Join(gopath, "bin", "step"); fileExists(p) {
				path = p
			}
		}
	}
	if path == "" {
		return nil, errors.New("no step CLI on PATH nor in $(go env GOPATH)/bin; install it " +
			"(scripts/install-test-deps.sh does), pass -step BIN, or skip the shell loop with -n-shell 0")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, abs, "version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s version: %w", abs, err)
	}
	version, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return &stepCLI{path: abs, version: version}, nil
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}

// loopScript is the shell loop: what a line without gwpki runs for each
// gateway, one after the other. It makes the key and the birth certificate
// only: no registration, no claim credentials, no label, no manifest.
var loopScript = template.Must(template.New("loop").Parse(`#!/usr/bin/env bash
# Provision gateways without gwpki, one after the other: for each serial, a
# one-time token signed with the station's JWK (step ca token), then a key and
# a birth certificate from the CA (step ca certificate).
# Written by bench/provision; run as: bash {{.Script}}
set -euo pipefail

CA_URL={{.CAURL}}
ROOT={{.Root}}
KEY={{.Key}}
OUT={{.Out}}

for ((i = {{.First}}; i <= {{.Last}}; i++)); do
	printf -v serial '{{.Prefix}}%06d' "$i"
	mkdir -p "$OUT/$serial"
	token=$(step ca token "$serial" --provisioner {{.Provisioner}} --key "$KEY" \
		--san "urn:gwpki:gateway:$serial" --ca-url "$CA_URL" --root "$ROOT")
	step ca certificate "$serial" "$OUT/$serial/idevid.crt" "$OUT/$serial/idevid.key" \
		--token "$token" --ca-url "$CA_URL" --root "$ROOT"
done
`))

// loopParams fill loopScript; the paths and the URL are shell-quoted.
type loopParams struct {
	Script, CAURL, Root, Key, Out string
	Prefix, Provisioner           string
	First, Last                   int
}

// writeLoopScript writes the shell loop for b into path.
func writeLoopScript(path, caURL, dataDir, out string, b batch) error {
	var sb strings.Builder
	err := loopScript.Execute(&sb, loopParams{
		Script:      path,
		CAURL:       shellQuote(caURL),
		Root:        shellQuote(filepath.Join(dataDir, "certs", "root_ca.crt")),
		Key:         shellQuote(filepath.Join(dataDir, stationName+".jwk")),
		Out:         shellQuote(out),
		Prefix:      b.prefix,
		Provisioner: stationName,
		First:       b.start,
		Last:        b.start + b.count - 1,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(sb.String()), 0o755)
}

// shellQuote quotes s for bash: in single quotes, each ' as '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// runShellLoop writes the loop for b into the work directory and times
// `bash SCRIPT`, with the step CLI first on PATH and a STEPPATH of its own
// (so no step configuration of this machine's user is read).
func runShellLoop(ctx context.Context, step *stepCLI, srv *server, dataDir, work string, b batch) (*result, error) {
	for _, c := range b.prefix {
		if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", c) {
			return nil, fmt.Errorf("serial prefix %q: letters, digits and '-' only", b.prefix)
		}
	}
	script := filepath.Join(work, "provision-loop.sh")
	out := filepath.Join(work, b.out)
	if err := writeLoopScript(script, srv.apiURL, dataDir, out, b); err != nil {
		return nil, err
	}
	stepPath := filepath.Join(work, "step")
	if err := os.MkdirAll(stepPath, 0o700); err != nil {
		return nil, err
	}
	env := []string{
		"PATH=" + filepath.Dir(step.path) + string(os.PathListSeparator) + os.Getenv("PATH"),
		"STEPPATH=" + stepPath,
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		return nil, fmt.Errorf("the shell loop needs bash: %w", err)
	}
	w, err := timeCommand(ctx, srv, filepath.Join(work, "provision-loop.log"), env, bash, script)
	if err != nil {
		return nil, fmt.Errorf("%w (server log: %s)", err, srv.logPath)
	}
	r := &result{
		Name:    "shell loop",
		Tool:    "bash + step ca token + step ca certificate",
		Version: step.version,
		Labels:  "-",
		Command: "bash " + script,
	}
	r.fill(w, b.count)
	return r, nil
}
