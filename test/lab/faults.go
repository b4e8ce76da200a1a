package lab

import (
	"context"
	"fmt"
	"strings"
	"syscall"
)

// Kill makes a NAT instance die unplanned: its link goes down and its agent is SIGKILLed and
// not restarted (until Revive). In EC2 such an instance stays "running" for a while, so the
// simulator is not told: only the data path dies. Its tailscaled keeps running but reaches
// nothing, as a powered-off host's node would: headscale's HA prober finds it unreachable.
func (l *Lab) Kill(site string) error {
	s, err := l.liveSite(site)
	if err != nil {
		return err
	}
	if _, err := s.NAT.Run("ip", "link", "set", "eth0", "down"); err != nil {
		return err
	}
	if err := l.StopAgent(s.Name, syscall.SIGKILL, 0); err != nil && !l.opts.NoAgents {
		return err
	}
	l.killTailscaled(s.Name)
	l.log.Info("instance killed", "nat", s.Name, "instance", s.InstanceID)
	return nil
}

// Revive brings a NAT instance back to health: link up, default route back, its break-egress
// fault removed, its agent started if it does not run. With a tailnet, the tailscaled of a
// killed instance starts afresh with its state, as after a reboot.
func (l *Lab) Revive(site string) error {
	s, err := l.liveSite(site)
	if err != nil {
		return err
	}
	if err := run(s.NAT,
		[]string{"ip", "link", "set", "eth0", "up"},
		// Taking the link down removed the routes through it.
		[]string{"ip", "route", "replace", "default", "via", s.RouterPub},
	); err != nil {
		return err
	}
	if err := l.faultRuleDel(egressRule(s)...); err != nil {
		return err
	}
	// A killed instance boots again: its tailscaled starts afresh.
	if err := l.reviveTailscaled(context.Background(), s.Name); err != nil {
		return err
	}
	if !l.AgentRunning(s.Name) && !l.opts.NoAgents {
		if err := l.StartAgent(s.Name); err != nil {
			return err
		}
	}
	l.log.Info("instance revived", "nat", s.Name, "instance", s.InstanceID)
	return nil
}

// faultRule adds a rule to the lab's fault chain unless it is there already.
func (l *Lab) faultRule(args ...string) error {
	if l.hasFaultRule(args...) {
		return nil
	}
	_, err := l.Router.Run(append([]string{"iptables", "-w", "-A", faultChain}, args...)...)
	return err
}

func (l *Lab) hasFaultRule(args ...string) bool {
	_, err := l.Router.Run(append([]string{"iptables", "-w", "-C", faultChain}, args...)...)
	return err == nil
}

// faultRuleDel removes a rule from the lab's fault chain if it is there.
func (l *Lab) faultRuleDel(args ...string) error {
	for range 8 { // the chain holds each rule once; bounded all the same
		if !l.hasFaultRule(args...) {
			return nil
		}
		if _, err := l.Router.Run(append([]string{"iptables", "-w", "-D", faultChain}, args...)...); err != nil {
			return err
		}
	}
	return fmt.Errorf("fault rule %v still present", args)
}

// egressRule drops what a NAT sends to the internet.
func egressRule(s *Site) []string {
	return []string{"-i", s.pubIf(), "-o", "igw", "-m", "comment", "--comment", "break-egress " + s.Name, "-j", "DROP"}
}

// BreakEgress drops everything the NAT sends to the internet (its own probes and what it
// forwards), keeping its VPC paths. Revive or Heal undo it.
func (l *Lab) BreakEgress(site string) error {
	s, err := l.liveSite(site)
	if err != nil {
		return err
	}
	if err := l.faultRule(egressRule(s)...); err != nil {
		return err
	}
	l.log.Info("egress broken", "nat", s.Name)
	return nil
}

// Partition drops traffic between the NAT instances over the VPC, every pair both ways; all
// keep their egress and their private subnets.
func (l *Lab) Partition() error {
	for _, a := range l.NATs() {
		for _, b := range l.NATs() {
			if a == b {
				continue
			}
			if err := l.faultRule("-s", a.NATIP, "-d", b.NATIP, "-m", "comment", "--comment", "partition", "-j", "DROP"); err != nil {
				return err
			}
		}
	}
	l.log.Info("NAT instances partitioned")
	return nil
}

// Heal removes every break and partition.
func (l *Lab) Heal() error {
	if _, err := l.Router.Run("iptables", "-w", "-F", faultChain); err != nil {
		return err
	}
	l.log.Info("faults healed")
	return nil
}

// NATState is a NAT instance as the lab's faults left it.
type NATState struct {
	Name         string    `json:"name"`
	LinkUp       bool      `json:"link_up"`
	EgressBroken bool      `json:"egress_broken"`
	Agent        AgentProc `json:"agent"`
}

// Up reports whether nothing the lab does keeps the instance from serving: link up, egress
// not broken, agent running.
func (n NATState) Up() bool { return n.LinkUp && !n.EgressBroken && n.Agent.State == ProcRunning }

// NATState returns what the lab's faults and process supervision made of a NAT instance.
func (l *Lab) NATState(site string) (NATState, error) {
	s, err := l.Site(site)
	if err != nil {
		return NATState{}, err
	}
	ag, err := l.Agent(s.Name)
	if err != nil {
		return NATState{}, err
	}
	return NATState{Name: s.Name, LinkUp: l.linkUp(s), EgressBroken: l.hasFaultRule(egressRule(s)...), Agent: ag}, nil
}

func (l *Lab) linkUp(s *Site) bool {
	out, err := s.NAT.Run("ip", "-o", "link", "show", "eth0")
	return err == nil && (strings.Contains(out, ",UP") || strings.Contains(out, "<UP"))
}

// Faults lists the active fault rules, one per line.
func (l *Lab) Faults() ([]string, error) {
	out, err := l.Router.Run("iptables", "-w", "-S", faultChain)
	if err != nil {
		return nil, err
	}
	var rules []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "-A ") {
			rules = append(rules, line)
		}
	}
	return rules, nil
}

// Reset heals every fault and revives every instance (starting agents that do not run).
// Tables go back home on their own, after failback_after.
func (l *Lab) Reset() error {
	if err := l.Heal(); err != nil {
		return err
	}
	for _, s := range l.NATs() {
		if err := l.Revive(s.Name); err != nil {
			return fmt.Errorf("revive %s: %w", s.Name, err)
		}
	}
	return nil
}

// Dump returns the router's and the NATs' routing and firewall state, for failure messages.
func (l *Lab) Dump() string {
	var b strings.Builder
	show := func(ns string, run func(...string) (string, error), args ...string) {
		out, err := run(args...)
		fmt.Fprintf(&b, "--- [%s] %s\n%s", ns, strings.Join(args, " "), out)
		if err != nil {
			fmt.Fprintf(&b, "(error: %v)\n", err)
		}
	}
	if l.Router != nil {
		show("router", l.Router.Run, "ip", "rule")
		show("router", l.Router.Run, "ip", "route", "show", "table", "all")
		show("router", l.Router.Run, "iptables-save", "-c")
	}
	for _, s := range l.NATs() {
		if s.NAT == nil {
			continue
		}
		show("nat-"+s.Name, s.NAT.Run, "ip", "-br", "addr")
		show("nat-"+s.Name, s.NAT.Run, "ip", "route")
		show("nat-"+s.Name, s.NAT.Run, "iptables-save", "-c")
		show("nat-"+s.Name, s.NAT.Run, "sysctl", "net.ipv4.ip_forward")
	}
	return b.String()
}
