package lab

// The instance lifecycle of the lab's Auto Scaling group: NAT instances launched and
// terminated while the lab runs, as scale-out, scale-in, instance refresh and spot
// interruptions do on AWS.

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/headnat/headnat/test/netns"
	"github.com/headnat/headnat/test/vpcsim"
)

// Launch adds a NAT instance to an AZ ("a") while the lab runs, as the ASG's scale-out would:
// the AZ's lowest free slot (at most MaxNATsPerAZ NATs per AZ) and the AZ's next name ("a3"),
// its namespace and router leg (the router answers ARP between the NATs of a shared subnet),
// its own EIP, the instance launched into the ASG (Pending:Wait under the launch hook until
// its agent completes it, see WaitInService), its IMDS mock, its tailscaled with a tailnet,
// and its agent (unless Options.NoAgents). It returns once the agent runs. If the agent does
// not start, the NAT stays and is returned with the error.
func (l *Lab) Launch(ctx context.Context, az string) (*Site, error) {
	return l.LaunchWith(ctx, az, LaunchOptions{})
}

// LaunchOptions change a launch.
type LaunchOptions struct {
	BreakEgress bool     // the NAT's egress is broken (BreakEgress) before its agent starts
	AgentEnv    []string // added to the agent's environment (see StartAgent)
	// NoAgent leaves the agent and tailscaled to the caller, e.g. an image of the AMI booted
	// in the NAT's namespace (test/ami); with a tailnet, headscale is at TailnetLoginServer
	// there.
	NoAgent bool
}

// LaunchWith is Launch with options.
func (l *Lab) LaunchWith(ctx context.Context, az string, o LaunchOptions) (*Site, error) {
	if !slices.Contains(AZs, az) {
		return nil, fmt.Errorf("launch: no AZ %q in the lab (have %s)", az, strings.Join(AZs, ", "))
	}
	l.lifeMu.Lock()
	defer l.lifeMu.Unlock()
	s, err := l.newLaunch(az)
	if err != nil {
		return nil, fmt.Errorf("launch in AZ %s: %w", az, err)
	}
	if err := l.buildLaunched(ctx, s, !o.NoAgent); err != nil {
		if terr := l.teardown(s); terr != nil {
			l.log.Warn("clean up a failed launch", "nat", s.Name, "err", terr)
		}
		return nil, fmt.Errorf("launch nat-%s: %w", s.Name, err)
	}
	l.publish(s)
	l.log.Info("instance launched", "nat", s.Name, "az", s.Zone, "instance", s.InstanceID, "ip", s.NATIP, "eip", s.EIP,
		"lifecycle", l.Sim.GroupInstanceState(ASGName, s.InstanceID))
	if o.BreakEgress {
		if err := l.BreakEgress(s.Name); err != nil {
			return s, fmt.Errorf("launch nat-%s: %w", s.Name, err)
		}
	}
	if l.opts.NoAgents || o.NoAgent {
		return s, nil
	}
	if err := l.StartAgent(s.Name, o.AgentEnv...); err != nil {
		return s, fmt.Errorf("launch nat-%s: %w", s.Name, err)
	}
	return s, nil
}

// newLaunch picks the new NAT's slot and name and copies its AZ's fields.
func (l *Lab) newLaunch(az string) (*Site, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("the lab is closed")
	}
	used := map[int]bool{}
	for _, s := range l.nats {
		if s.AZ == az {
			used[s.Index] = true
		}
	}
	k := 1
	for used[k] {
		k++
	}
	if k > MaxNATsPerAZ {
		return nil, fmt.Errorf("the AZ has %d NAT instances, the most the lab holds", MaxNATsPerAZ)
	}
	tmpl := l.azSiteLocked(az)
	if tmpl == nil {
		return nil, errors.New("the AZ was never built")
	}
	l.natSeq[az]++
	s := newSite(az, k, l.natSeq[az])
	s.Host, s.VPCID, s.PublicSubnet, s.PrivateSubnet, s.RouteTable = tmpl.Host, tmpl.VPCID, tmpl.PublicSubnet, tmpl.PrivateSubnet, tmpl.RouteTable
	s.LaunchTime = time.Now().UTC().Truncate(time.Second)
	return s, nil
}

// buildLaunched builds everything of a new NAT but its agent, and its tailscaled only if
// tailscaled is set; s is not published yet.
func (l *Lab) buildLaunched(ctx context.Context, s *Site, tailscaled bool) error {
	var err error
	if s.NAT, err = l.addNS("nat-" + s.Name); err != nil {
		return err
	}
	if err := l.sink.addSDCLeg(s.pubIf()); err != nil {
		return err
	}
	peers := l.NATsIn(s.AZ)
	if err := l.buildNAT(s, len(peers) > 0); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	for _, p := range peers {
		if err := run(l.Router, proxyARP(p)...); err != nil {
			return fmt.Errorf("proxy ARP on nat-%s's leg: %w", p.Name, err)
		}
	}
	if err := l.launchInstance(s); err != nil {
		return err
	}
	if err := l.startIMDS(ctx, s); err != nil {
		return fmt.Errorf("imds: %w", err)
	}
	switch {
	case l.tn != nil && tailscaled:
		return l.startTailscaledIn(ctx, s.Name, s.NAT)
	case l.tn != nil:
		return l.startForwarder(s.Name, s.NAT)
	}
	return nil
}

// launchInstance launches the NAT's instance into the ASG and associates its EIP (an
// allocation of a terminated NAT of the same slot is reused).
func (l *Lab) launchInstance(s *Site) error {
	id, eni, token, err := l.Sim.LaunchIntoGroup(ASGName, vpcsim.InstanceSpec{
		SubnetID:   s.PublicSubnet,
		PrivateIP:  s.NATIP,
		LaunchTime: s.LaunchTime,
		Tags:       map[string]string{ClusterTag: Cluster, "Name": "headnat-" + s.Name},
	})
	if err != nil {
		return err
	}
	s.InstanceID, s.ENI = id, eni
	l.mu.Lock()
	l.launches[s.Name] = token
	alloc := l.eipAlloc[s.EIP]
	l.mu.Unlock()
	if alloc == "" {
		alloc = l.Sim.AddAddress(s.EIP)
		l.mu.Lock()
		l.eipAlloc[s.EIP] = alloc
		l.mu.Unlock()
	}
	s.AllocationID = alloc
	if _, err := l.Sim.AssociateAddress(alloc, eni); err != nil {
		return fmt.Errorf("EIP %s: %w", s.EIP, err)
	}
	return nil
}

// addNS creates a namespace and records it for Close and Remove.
func (l *Lab) addNS(role string) (*netns.NS, error) {
	n, err := netns.Add(role)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.nss = append(l.nss, n)
	l.state.Namespaces[role] = n.Name
	l.mu.Unlock()
	return n, l.saveState()
}

// WaitInService waits, bounded by timeout, until the simulator has a NAT's instance InService in
// the lab's ASG. It fails at once, with the reason, when the launch lifecycle action was
// abandoned (by its agent or by timing out) or the instance is gone.
func (l *Lab) WaitInService(ctx context.Context, site string, timeout time.Duration) error {
	s, err := l.Site(site)
	if err != nil {
		return err
	}
	var why error
	ok, err := Poll(ctx, timeout, 100*time.Millisecond, func() bool {
		if l.Sim.GroupInstanceState(ASGName, s.InstanceID) == vpcsim.LifecycleInService {
			return true
		}
		why = l.launchFailure(s)
		return why != nil
	})
	switch {
	case err != nil:
		return err
	case why != nil:
		return why
	case !ok:
		return fmt.Errorf("nat-%s not InService within %s: %s", s.Name, timeout, l.LifecycleState(s.Name))
	}
	return nil
}

// launchFailure says why a NAT will never go InService, nil while it still may.
func (l *Lab) launchFailure(s *Site) error {
	if l.Sim.GroupInstanceState(ASGName, s.InstanceID) != "" {
		return nil
	}
	l.mu.Lock()
	token := l.launches[s.Name]
	l.mu.Unlock()
	if v, ok := l.Sim.LifecycleAction(token); ok && v.Completed && v.Result == vpcsim.ResultAbandon {
		if v.TimedOut {
			return fmt.Errorf("nat-%s: its launch lifecycle action timed out (no completion or heartbeat by %s): ABANDON, instance terminated",
				s.Name, v.Deadline.Local().Format("15:04:05"))
		}
		return fmt.Errorf("nat-%s: its launch lifecycle action was completed with ABANDON: instance terminated", s.Name)
	}
	return fmt.Errorf("nat-%s is no longer in the ASG (instance %s)", s.Name, l.LifecycleState(s.Name))
}

// LaunchAction is the launch lifecycle action of a NAT launched while the lab runs.
func (l *Lab) LaunchAction(site string) (vpcsim.LifecycleActionView, bool) {
	s, err := l.Site(site)
	if err != nil {
		return vpcsim.LifecycleActionView{}, false
	}
	l.mu.Lock()
	token := l.launches[s.Name]
	l.mu.Unlock()
	return l.Sim.LifecycleAction(token)
}

// LifecycleState is a NAT's state in the ASG as the simulator has it: "Pending:Wait",
// "InService", "Terminating:Wait", ..., or "terminated" once its instance is.
func (l *Lab) LifecycleState(site string) string {
	s, err := l.Site(site)
	if err != nil {
		return ""
	}
	if in, ok := l.Sim.Instance(s.InstanceID); ok && in.State == vpcsim.StateTerminated {
		return vpcsim.StateTerminated
	}
	if st := l.Sim.GroupInstanceState(ASGName, s.InstanceID); st != "" {
		return st
	}
	return "not in the ASG"
}

// Terminate takes a NAT out of service as an ASG scale-in or instance refresh does: it starts
// the terminate lifecycle action (DrainHook), sets the NAT's IMDS target lifecycle state to
// Terminated, waits (bounded by timeout) until the action is completed by the agent (CONTINUE
// or ABANDON) or times out (the hook's heartbeat timeout, 5 minutes, heartbeats extending it),
// then terminates the instance (TerminateNow). If timeout passes first, the NAT stays in
// Terminating:Wait and the error says so.
func (l *Lab) Terminate(ctx context.Context, site string, timeout time.Duration) error {
	s, err := l.liveSite(site)
	if err != nil {
		return err
	}
	token, err := l.Sim.StartLifecycleAction(ASGName, s.InstanceID, DrainHook)
	if err != nil {
		return fmt.Errorf("terminate nat-%s: %w", s.Name, err)
	}
	l.log.Info("terminate lifecycle action started", "nat", s.Name, "token", token)
	if err := l.SetTargetLifecycleState(s.Name, TargetTerminated); err != nil {
		return fmt.Errorf("terminate nat-%s: %w", s.Name, err)
	}
	if err := l.waitAction(ctx, s, token, timeout); err != nil {
		return fmt.Errorf("terminate nat-%s: %w", s.Name, err)
	}
	return l.TerminateNow(s.Name)
}

// waitAction waits until a lifecycle action is finished (or its NAT is gone).
func (l *Lab) waitAction(ctx context.Context, s *Site, token string, timeout time.Duration) error {
	done := func() bool {
		v, _ := l.Sim.LifecycleAction(token)
		return v.Completed || !l.Live(s.Name)
	}
	ok, err := Poll(ctx, timeout, 100*time.Millisecond, func() bool {
		select {
		case <-l.closing:
			return true
		default:
		}
		return done()
	})
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("its terminate lifecycle action was not completed within %s (%s)", timeout, l.LifecycleState(s.Name))
	case !done():
		return errors.New("the lab is closed")
	}
	v, _ := l.Sim.LifecycleAction(token)
	l.log.Info("terminate lifecycle action finished", "nat", s.Name, "result", v.Result, "timed_out", v.TimedOut)
	return nil
}

// TerminateNow makes a NAT's instance gone, as EC2 terminating it does: the instance is
// terminated in the simulator (if not already: routes to it become blackholes), its agent is
// SIGKILLed and never restarted, its IMDS mock and tailscaled stop, its namespace and router
// leg are removed, and it leaves NATs (Site still finds it). Terminating a terminated NAT does
// nothing.
func (l *Lab) TerminateNow(site string) error {
	s, err := l.Site(site)
	if err != nil {
		return err
	}
	l.lifeMu.Lock()
	defer l.lifeMu.Unlock()
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed || !l.Live(s.Name) {
		return nil
	}
	l.retire(s)
	err = l.teardown(s)
	l.mu.Lock()
	l.removed[s.Name] = true
	l.mu.Unlock()
	if err != nil {
		return fmt.Errorf("terminate nat-%s: %w", s.Name, err)
	}
	l.log.Info("instance terminated", "nat", s.Name, "instance", s.InstanceID)
	return nil
}

// WaitTerminated waits, bounded by timeout, until a NAT is terminated and removed (by
// TerminateNow, Terminate, a spot interruption, or the lab removing an instance the simulator
// terminated).
func (l *Lab) WaitTerminated(ctx context.Context, site string, timeout time.Duration) error {
	s, err := l.Site(site)
	if err != nil {
		return err
	}
	ok, err := Poll(ctx, timeout, 50*time.Millisecond, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.removed[s.Name]
	})
	if err == nil && !ok {
		err = fmt.Errorf("nat-%s not terminated within %s (%s)", s.Name, timeout, l.LifecycleState(s.Name))
	}
	return err
}

// teardown removes whatever of a NAT exists, in the order EC2 and the host would lose it.
func (l *Lab) teardown(s *Site) error {
	var errs []error
	if s.InstanceID != "" {
		if err := l.Sim.SetInstanceState(s.InstanceID, vpcsim.StateTerminated); err != nil {
			errs = append(errs, err)
		}
	}
	if err := l.stopAgent(s, syscall.SIGKILL, 0); err != nil && !errors.Is(err, errNoAgent) {
		errs = append(errs, err)
	}
	l.imdsMu.Lock()
	l.mu.Lock()
	p := l.imds[s.Name]
	delete(l.imds, s.Name)
	l.mu.Unlock()
	if p != nil {
		p.stop(syscall.SIGKILL, 0)
	}
	l.imdsMu.Unlock()
	l.stopTailscaled(s.Name)
	if s.NAT != nil {
		errs = append(errs, l.removeNS(s))
	}
	return errors.Join(errs...)
}

// removeNS deletes a NAT's namespace (its leg goes with it) and forgets it and its processes.
func (l *Lab) removeNS(s *Site) error {
	l.mu.Lock()
	l.nss = slices.DeleteFunc(l.nss, func(n *netns.NS) bool { return n == s.NAT })
	delete(l.state.Namespaces, "nat-"+s.Name)
	for _, p := range []string{"agent-", "imds-", "tailscaled-", "forwarder-"} {
		delete(l.state.Pids, p+s.Name)
	}
	l.mu.Unlock()
	err := s.NAT.Delete()
	return errors.Join(err, l.saveState())
}

// Refresh replaces every NAT live at the start, one at a time, as an ASG instance refresh does:
// Launch a replacement in the same AZ, WaitInService, then Terminate the old one. timeout
// bounds each wait. It returns the replacements launched so far.
func (l *Lab) Refresh(ctx context.Context, timeout time.Duration) ([]*Site, error) {
	return l.RefreshSteps(ctx, timeout, nil)
}

// RefreshSteps is Refresh telling step (if not nil) about each step as it starts and ends.
func (l *Lab) RefreshSteps(ctx context.Context, timeout time.Duration, step func(msg string)) ([]*Site, error) {
	say := func(format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		l.log.Info("instance refresh: " + msg)
		if step != nil {
			step(msg)
		}
	}
	var out []*Site
	for _, old := range l.NATs() {
		say("launching a replacement of nat-%s in AZ %s", old.Name, old.AZ)
		n, err := l.Launch(ctx, old.AZ)
		if n != nil {
			out = append(out, n)
		}
		if err != nil {
			return out, err
		}
		say("nat-%s launched (%s, %s); waiting for it to be InService", n.Name, n.InstanceID, n.NATIP)
		if err := l.WaitInService(ctx, n.Name, timeout); err != nil {
			return out, err
		}
		say("nat-%s is InService; terminating nat-%s through the terminate hook", n.Name, old.Name)
		if err := l.Terminate(ctx, old.Name, timeout); err != nil {
			return out, err
		}
		say("nat-%s terminated", old.Name)
	}
	return out, nil
}

// ControlSocket is where a NAT's agent serves `headnat drain` and `headnat undrain`
// (HEADNAT_CONTROL_SOCKET).
func (l *Lab) ControlSocket(site string) string {
	return filepath.Join(l.dir, "agent-"+strings.TrimPrefix(site, "nat-"), "control.sock")
}

// Drain runs `headnat drain --socket <ControlSocket>` in a NAT's namespace with its agent's
// environment, and returns its output.
func (l *Lab) Drain(ctx context.Context, site string, args ...string) (string, error) {
	return l.agentCommand(ctx, site, "drain", args...)
}

// Undrain runs `headnat undrain --socket <ControlSocket>` as Drain does.
func (l *Lab) Undrain(ctx context.Context, site string) (string, error) {
	return l.agentCommand(ctx, site, "undrain")
}

func (l *Lab) agentCommand(ctx context.Context, site, cmd string, args ...string) (string, error) {
	s, err := l.liveSite(site)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c := s.NAT.Cmd(ctx, l.bin, append([]string{cmd, "--socket", l.ControlSocket(s.Name)}, args...)...)
	c.Env = l.AgentEnv(s)
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("headnat %s in nat-%s: %w: %s", cmd, s.Name, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
