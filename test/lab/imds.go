package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// IMDSAddr is where each NAT namespace serves its own instance metadata.
const IMDSAddr = "169.254.169.254"

// farFuture keeps the mock's spot notice, rebalance recommendation and ASG termination from
// firing: the mock fires them at once unless given a trigger time.
const farFuture = "2099-01-01T00:00:00Z"

// imdsEvents are the instance events a NAT's IMDS mock serves; the zero value serves none.
//
// ec2-metadata-mock v1.13.0 (pkg/mock/spot, pkg/mock/asglifecycle) answers, with a valid
// IMDSv2 token:
//   - spot/instance-action: 404 until mock-trigger-time (RFC 3339, whole seconds), then
//     {"action": spot.action, "time": spot.time}; spot.time defaults to the request's time plus
//     2 minutes, so the lab sets it. spot/termination-time answers spot.time alone;
//   - events/recommendations/rebalance: 404 until rebalance-trigger-time, then
//     {"noticeTime": spot.rebalance-rec-time} (default: the request's time);
//   - autoscaling/target-lifecycle-state: "InService" until asg-termination-trigger-time, then
//     "Terminated" for the rest of the process's life.
//
// The *-delay-sec keys count from the mock's start instead; the lab uses trigger times only.
// The mock reads its configuration once, and its tokens live in its memory: a new event means
// a new mock process, which refuses the tokens of the old one (the SDK's client fetches a new
// token on that 401 and retries).
type imdsEvents struct {
	spotNotice, interruption time.Time // spot interruption notice (action terminate), zero: none
	rebalance                time.Time // rebalance recommendation's notice time, zero: none
	terminated               time.Time // target lifecycle state Terminated since, zero: InService
}

// rfc3339 formats t as the mock wants it: UTC, whole seconds.
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// triggers is the events' part of the mock's configuration.
func (ev imdsEvents) triggers() map[string]any {
	cfg := map[string]any{
		"mock-trigger-time":            farFuture,
		"rebalance-trigger-time":       farFuture,
		"asg-termination-trigger-time": farFuture,
	}
	spot := map[string]string{"action": "terminate"}
	if !ev.spotNotice.IsZero() {
		cfg["mock-trigger-time"] = rfc3339(ev.spotNotice)
		spot["time"] = rfc3339(ev.interruption)
	}
	if !ev.rebalance.IsZero() {
		cfg["rebalance-trigger-time"] = rfc3339(ev.rebalance)
		spot["rebalance-rec-time"] = rfc3339(ev.rebalance)
	}
	if !ev.terminated.IsZero() {
		cfg["asg-termination-trigger-time"] = rfc3339(ev.terminated)
	}
	cfg["spot"] = spot
	return cfg
}

// imdsConfig is the ec2-metadata-mock configuration (dashed keys) for one NAT instance. The mock
// rewrites every per-MAC path to the overridden "mac" itself.
func imdsConfig(s *Site, ev imdsEvents) ([]byte, error) {
	host := "ip-" + strings.ReplaceAll(s.NATIP, ".", "-") + ".ec2.internal"
	values := map[string]string{
		"instance-id":                      s.InstanceID,
		"instance-type":                    "t4g.nano",
		"instance-life-cycle":              "spot",
		"ami-id":                           "ami-0123456789abcdef0",
		"hostname":                         host,
		"local-hostname":                   host,
		"local-ipv4":                       s.NATIP,
		"public-ipv4":                      s.EIP,
		"public-hostname":                  "",
		"mac":                              s.MAC,
		"mac-mac":                          s.MAC,
		"mac-device-number":                "0",
		"mac-network-interface-card-index": "0",
		"mac-network-interface-id":         s.ENI,
		"mac-local-ipv4s":                  s.NATIP,
		"mac-local-hostname":               host,
		"mac-public-ipv4s":                 s.EIP,
		"mac-ipv4-associations":            s.NATIP,
		"mac-owner-id":                     AccountID,
		"mac-subnet-id":                    s.PublicSubnet,
		"mac-subnet-ipv4-cidr-block":       s.PublicCIDR,
		"mac-vpc-id":                       s.VPCID,
		"mac-vpc-ipv4-cidr-block":          VPCCIDR,
		"mac-vpc-ipv4-cidr-blocks":         VPCCIDR,
		"placement-availability-zone":      s.Zone,
		"placement-availability-zone-id":   "use1-az" + s.AZ,
		"placement-region":                 Region,
		"tags-instance-name":               "headnat-" + s.Name,
	}
	doc := map[string]any{
		"accountId":        AccountID,
		"architecture":     "arm64",
		"availabilityZone": s.Zone,
		"imageId":          "ami-0123456789abcdef0",
		"instanceId":       s.InstanceID,
		"instanceType":     "t4g.nano",
		"pendingTime":      s.LaunchTime.UTC().Format("2006-01-02T15:04:05Z"),
		"privateIp":        s.NATIP,
		"region":           Region,
		"version":          "2017-09-30",
	}
	cfg := ev.triggers()
	for k, v := range map[string]any{
		"imdsv2":        true,
		"mock-ip-count": -1,
		"server":        map[string]string{"hostname": IMDSAddr, "port": "80"},
		"metadata": map[string]any{
			"values": values,
			// The mock keeps the default's "ipv4-associations/<its default IP>" path otherwise.
			"paths": map[string]string{
				"mac-ipv4-associations": "/latest/meta-data/network/interfaces/macs/" + s.MAC + "/ipv4-associations/" + s.EIP,
			},
		},
		"dynamic": map[string]any{"values": map[string]any{"instance-identity-document": doc}},
	} {
		cfg[k] = v
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("imds config: %w", err)
	}
	return b, nil
}

// DefaultSpotDelay is the time from a spot interruption notice to the interruption on AWS.
const DefaultSpotDelay = 2 * time.Minute

// SpotNotice makes a NAT's IMDS answer spot/instance-action with action "terminate" and the
// interruption time delay from now (DefaultSpotDelay if 0), in whole seconds as AWS gives it,
// and returns that time. At that time the lab terminates the instance as EC2 would
// (TerminateNow), whatever its agent did. The NAT's IMDS mock restarts (see imdsEvents).
func (l *Lab) SpotNotice(site string, delay time.Duration) (time.Time, error) {
	if delay <= 0 {
		delay = DefaultSpotDelay
	}
	now := time.Now().Truncate(time.Second)
	at := now.Add(delay.Round(time.Second))
	s, err := l.setIMDSEvents(site, func(ev *imdsEvents) { ev.spotNotice, ev.interruption = now, at })
	if err != nil {
		return time.Time{}, fmt.Errorf("spot notice: %w", err)
	}
	go l.interruptAt(s, at)
	l.log.Info("spot interruption notice", "nat", s.Name, "interruption", at)
	return at, nil
}

// interruptAt terminates the NAT at t, unless the lab closes first.
func (l *Lab) interruptAt(s *Site, t time.Time) {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-l.closing:
		return
	}
	l.log.Info("spot interruption: terminating the instance", "nat", s.Name)
	if err := l.TerminateNow(s.Name); err != nil {
		l.log.Warn("spot interruption", "nat", s.Name, "err", err)
	}
}

// Rebalance makes a NAT's IMDS answer events/recommendations/rebalance with a notice time of
// now, and returns it. The NAT's IMDS mock restarts.
func (l *Lab) Rebalance(site string) (time.Time, error) {
	now := time.Now().Truncate(time.Second)
	s, err := l.setIMDSEvents(site, func(ev *imdsEvents) { ev.rebalance = now })
	if err != nil {
		return time.Time{}, fmt.Errorf("rebalance recommendation: %w", err)
	}
	l.log.Info("rebalance recommendation", "nat", s.Name)
	return now, nil
}

// Target lifecycle states SetTargetLifecycleState accepts.
const (
	TargetInService  = "InService"
	TargetTerminated = "Terminated"
)

// SetTargetLifecycleState sets what a NAT's IMDS answers at autoscaling/target-lifecycle-state:
// TargetTerminated, or TargetInService (the default). The NAT's IMDS mock restarts.
func (l *Lab) SetTargetLifecycleState(site, state string) error {
	now := time.Now().Truncate(time.Second)
	var set func(ev *imdsEvents)
	switch state {
	case TargetTerminated:
		set = func(ev *imdsEvents) { ev.terminated = now }
	case TargetInService:
		set = func(ev *imdsEvents) { ev.terminated = time.Time{} }
	default:
		return fmt.Errorf("target lifecycle state %q: the lab serves %s or %s", state, TargetInService, TargetTerminated)
	}
	s, err := l.setIMDSEvents(site, set)
	if err != nil {
		return fmt.Errorf("target lifecycle state: %w", err)
	}
	l.log.Info("target lifecycle state", "nat", s.Name, "state", state)
	return nil
}

// setIMDSEvents changes a live NAT's IMDS events and restarts its mock with them.
func (l *Lab) setIMDSEvents(site string, change func(*imdsEvents)) (*Site, error) {
	s, err := l.liveSite(site)
	if err != nil {
		return nil, err
	}
	l.imdsMu.Lock()
	defer l.imdsMu.Unlock()
	if !l.Live(s.Name) {
		return nil, fmt.Errorf("nat-%s is terminated", s.Name)
	}
	l.mu.Lock()
	ev := l.imdsEvents[s.Name]
	change(&ev)
	l.imdsEvents[s.Name] = ev
	old := l.imds[s.Name]
	l.mu.Unlock()
	if old != nil {
		old.stop(syscall.SIGKILL, 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.startIMDS(ctx, s); err != nil {
		return nil, fmt.Errorf("restart the IMDS mock of nat-%s: %w", s.Name, err)
	}
	return s, nil
}
