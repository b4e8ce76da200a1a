package config

import (
	"strings"
	"testing"
)

func TestUserDataCommands(t *testing.T) {
	cmds, err := UserDataCommands("cluster: \"c\"")
	if err != nil {
		t.Fatal(err)
	}
	script := strings.Join(cmds, "\n")
	if !strings.Contains(script, "cluster: \"c\"\nHEADNAT_EOF") {
		t.Errorf("the configuration must end its line before the heredoc's marker:\n%s", script)
	}
	if cmds[len(cmds)-1] != "systemctl restart headnat.service" {
		t.Errorf("the user data must restart the agent last, got %q", cmds[len(cmds)-1])
	}
	if _, err := UserDataCommands("a: 1\nHEADNAT_EOF\nrm -rf /\n"); err == nil {
		t.Error("a configuration holding the heredoc's marker must be refused")
	}
}
