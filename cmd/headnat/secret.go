package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/headnat/headnat/agent/cloud"
)

func init() {
	commands["secret"] = command{"write an SSM SecureString parameter to a file, never to the terminal or the log", secretMain}
}

// secretFlags: which parameter, where it goes, and how AWS is reached (as the agent's
// aws.* settings; empty: the region from IMDS and the SDK's endpoints).
type secretFlags struct {
	parameter, out, mode string
	region, ssmEndpoint  string
	imdsEndpoint         string
}

func secretMain(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("secret", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var f secretFlags
	fs.StringVar(&f.parameter, "ssm-parameter", "", "the SecureString parameter's name (required)")
	fs.StringVar(&f.out, "out", "", "the file to write (required); replaced atomically")
	fs.StringVar(&f.mode, "mode", "0600", "the file's permissions (octal)")
	fs.StringVar(&f.region, "region", "", "AWS region (default: the instance's, from IMDS)")
	fs.StringVar(&f.ssmEndpoint, "ssm-endpoint", "", "SSM endpoint URL (default: the region's)")
	fs.StringVar(&f.imdsEndpoint, "imds-endpoint", "", "IMDS endpoint URL (default: the SDK's)")
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(e.stdout, "usage: headnat secret --ssm-parameter NAME --out FILE [--mode 0600] [--region R]")
			return nil
		}
		return err
	}
	mode, err := strconv.ParseUint(f.mode, 8, 32)
	switch {
	case f.parameter == "" || f.out == "":
		return usagef("--ssm-parameter and --out are required")
	case err != nil || mode > 0o777:
		return usagef("--mode %q: want octal permissions like 0640", f.mode)
	}
	cl, err := cloud.New(ctx, cloud.Options{Region: f.region, SSMEndpoint: f.ssmEndpoint, IMDSEndpoint: f.imdsEndpoint, Logger: e.log})
	if err != nil {
		return fmt.Errorf("aws client: %w", err)
	}
	value, err := cl.SecureParameter(ctx, f.parameter, "headnat secret --out "+f.out)
	if err != nil {
		return err
	}
	if value == "" {
		return fmt.Errorf("SSM parameter %s is empty: nothing written to %s", f.parameter, f.out)
	}
	return writeFileAtomic(f.out, []byte(value), os.FileMode(mode))
}

// writeFileAtomic writes data to a temporary file beside path with perm, then renames it
// over path: readers see the old content or the new, never a part.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
