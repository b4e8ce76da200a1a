package config

import (
	"fmt"
	"strings"
)

// AMIPath is where the AMI's headnat.service reads the configuration (ami/files).
const AMIPath = "/etc/headnat/headnat.yaml"

// UserDataCommands are the shell commands of a NAT instance's user data: write yaml as the
// agent's configuration, then restart the agent, which started at boot with the AMI's default,
// so that it reads it. yaml must not contain the heredoc's end marker.
func UserDataCommands(yaml string) ([]string, error) {
	const eof = "HEADNAT_EOF"
	if strings.Contains(yaml, eof) {
		return nil, fmt.Errorf("user data: the configuration contains the marker %s", eof)
	}
	if yaml != "" && !strings.HasSuffix(yaml, "\n") {
		yaml += "\n"
	}
	return []string{
		"set -euo pipefail",
		"install -d -m 0755 /etc/headnat",
		"cat > " + AMIPath + ".new <<'" + eof + "'\n" + yaml + eof,
		"chmod 0644 " + AMIPath + ".new",
		"mv -f " + AMIPath + ".new " + AMIPath,
		"systemctl restart headnat.service",
	}, nil
}
