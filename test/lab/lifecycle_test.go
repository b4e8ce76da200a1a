package lab

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/test/netns"
	"github.com/headnat/headnat/test/vpcsim"
)

// asgIn is an Auto Scaling client that reaches the simulator from inside a namespace.
func asgIn(l *Lab, nsName string) *autoscaling.Client {
	return autoscaling.New(autoscaling.Options{
		Region:       Region,
		BaseEndpoint: aws.String(APIURL()),
		Credentials:  credentials.NewStaticCredentialsProvider("lab-only", "lab-only", ""),
		HTTPClient:   l.Client(nsName, 5*time.Second),
	})
}

// cloudIn is agent/cloud's client on a NAT's IMDS, its imds.Client built as cloud.New builds
// it (IMDSv2 only, no fallback, the agent's retryer), dialing from the NAT's namespace.
func cloudIn(l *Lab, s *Site) *cloud.Client {
	md := imds.New(imds.Options{
		Endpoint:          "http://" + IMDSAddr,
		EnableFallback:    aws.FalseTernary,
		ClientEnableState: imds.ClientEnabled,
		Retryer:           cloud.NewRetryer(cloud.DefaultMaxAttempts, time.Second),
		HTTPClient:        l.Client(s.NAT.Name, 2*time.Second),
	})
	return cloud.NewWithClients(nil, nil, md, nil, cloud.Options{Region: Region})
}

// completeLaunch completes a NAT's lifecycle action of hook by instance ID, from its namespace.
func completeAction(t *testing.T, l *Lab, s *Site, hook, result string) {
	t.Helper()
	_, err := asgIn(l, s.NAT.Name).CompleteLifecycleAction(context.Background(), &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String(ASGName), LifecycleHookName: aws.String(hook),
		LifecycleActionResult: aws.String(result), InstanceId: aws.String(s.InstanceID)})
	if err != nil {
		t.Fatalf("complete %s of nat-%s with %s: %v", hook, s.Name, result, err)
	}
}

// sdcOff turns the NAT's source/dest check off through the API, as its agent would.
func sdcOff(t *testing.T, l *Lab, s *Site) {
	t.Helper()
	if _, err := ec2In(l, s.NAT.Name).ModifyInstanceAttribute(context.Background(), &ec2.ModifyInstanceAttributeInput{
		InstanceId: &s.InstanceID, SourceDestCheck: &ec2types.AttributeBooleanValue{Value: aws.Bool(false)},
	}); err != nil {
		t.Fatal(err)
	}
}

func pointTable(t *testing.T, l *Lab, from, to *Site) {
	t.Helper()
	if err := l.Sim.SetRoute(from.RouteTable, "0.0.0.0/0", to.ENI); err != nil {
		t.Fatal(err)
	}
}

func nsExists(name string) bool {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if n, _, _ := strings.Cut(strings.TrimSpace(line), " "); n == name {
			return true
		}
	}
	return false
}

func wantLifecycle(t *testing.T, l *Lab, s *Site, want string) {
	t.Helper()
	if err := waitFor(5*time.Second, func() bool { return l.LifecycleState(s.Name) == want }); err != nil {
		t.Fatalf("nat-%s lifecycle %q, want %q", s.Name, l.LifecycleState(s.Name), want)
	}
}

// Launch builds a NAT that forwards once its route points at it, in a shared subnet; the
// launch hook holds it in Pending:Wait; Terminate goes through the terminate hook and the
// IMDS target lifecycle state; TerminateNow removes it cleanly; names stay unique, slots and
// EIPs are reused, and the AZ's fields survive its first NAT.
func TestLaunchAndTerminateWithoutAgents(t *testing.T) {
	netns.RequireRoot(t)
	ctx := context.Background()
	l := ownLab(t, Options{NoAgents: true, Name: "launch"})
	a := l.MustSite("a")
	handNAT(t, a)
	sdcOff(t, l, a)
	pointTable(t, l, a, a)
	expectEcho(t, l, a, a.EIP)

	n, err := l.Launch(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != "a2" || n.Index != 2 || n.NATIP != "198.18.0.11" || n.EIP != "203.0.113.20" || n.Host != a.Host || n.RouteTable != a.RouteTable {
		t.Fatalf("launched %+v", n)
	}
	if got := strings.Join(l.NATNames(), ","); got != "a,a2,b" {
		t.Fatalf("NATs %s, want a,a2,b", got)
	}
	wantLifecycle(t, l, n, vpcsim.LifecyclePendingWait)
	if iv, _ := l.Sim.Instance(n.InstanceID); iv.Tags["aws:autoscaling:groupName"] != ASGName || !iv.SourceDestCheck {
		t.Fatalf("instance %+v", iv)
	}
	// The NATs of a shared subnet reach each other through the router (proxy ARP on both legs).
	a.NAT.MustRun(t, "ping", "-c1", "-W2", n.NATIP)
	n.NAT.MustRun(t, "ping", "-c1", "-W2", a.NATIP)
	// It forwards once its source/dest check is off and the route points at it.
	handNAT(t, n)
	pointTable(t, l, a, n)
	expectNoEcho(t, l, a)
	sdcOff(t, l, n)
	expectEcho(t, l, a, n.EIP)

	completeAction(t, l, n, LaunchHook, vpcsim.ResultContinue)
	if err := l.WaitInService(ctx, n.Name, 5*time.Second); err != nil {
		t.Fatal(err)
	}

	// Terminate: the terminate hook waits for its completion, IMDS says Terminated.
	done := make(chan error, 1)
	go func() { done <- l.Terminate(ctx, n.Name, 30*time.Second) }()
	wantLifecycle(t, l, n, vpcsim.LifecycleTerminatingWait)
	c := cloudIn(l, n)
	if err := waitFor(10*time.Second, func() bool { st, _ := c.TargetLifecycleState(ctx); return st == TargetTerminated }); err != nil {
		t.Fatal("IMDS target lifecycle state not Terminated during Terminate")
	}
	if !l.Live(n.Name) {
		t.Fatal("nat-a2 gone before its terminate action completed")
	}
	completeAction(t, l, n, DrainHook, vpcsim.ResultContinue)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Terminate did not return")
	}
	assertGone(t, l, n)
	// The route that pointed at it is a blackhole, named after the terminated NAT.
	if site, st := l.Target(a.RouteTable); site != "a2" || st != vpcsim.RouteBlackhole {
		t.Fatalf("table a targets %q (%s), want a2 blackhole", site, st)
	}
	expectNoEcho(t, l, a)
	if err := l.TerminateNow(n.Name); err != nil {
		t.Fatalf("second TerminateNow: %v", err)
	}
	if _, err := l.Crash(n.Name); err == nil {
		t.Fatal("a terminated NAT's agent can be crashed")
	}

	// The next launch takes the free slot (addresses, EIP allocation) under a new name; an
	// ABANDON of its launch hook terminates it, and WaitInService says so at once.
	n3, err := l.Launch(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if n3.Name != "a3" || n3.Index != 2 || n3.NATIP != n.NATIP || n3.AllocationID != n.AllocationID || n3.InstanceID == n.InstanceID {
		t.Fatalf("relaunched %+v after %+v", n3, n)
	}
	completeAction(t, l, n3, LaunchHook, vpcsim.ResultAbandon)
	start := time.Now()
	if err := l.WaitInService(ctx, n3.Name, 20*time.Second); err == nil || !strings.Contains(err.Error(), "ABANDON") || time.Since(start) > 5*time.Second {
		t.Fatalf("WaitInService after ABANDON: %v after %s", err, time.Since(start))
	}
	// The lab removes an instance the simulator terminated.
	if err := l.WaitTerminated(ctx, n3.Name, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	assertGone(t, l, n3)

	// The AZ's first NAT goes: the AZ's fields stay; the next launch takes slot 1.
	if err := l.TerminateNow("a"); err != nil {
		t.Fatal(err)
	}
	assertGone(t, l, a)
	if s := l.Sites()[0]; s.Name != "a" || s.Host != a.Host || s.RouteTable != a.RouteTable {
		t.Fatalf("Sites()[0] = %+v after AZ a lost its NATs", s)
	}
	n4, err := l.Launch(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if n4.Name != "a4" || n4.Index != 1 || n4.NATIP != a.NATIP || l.Sites()[0] != n4 || l.MustSite("a1") != n4 {
		t.Fatalf("launched %+v; Sites()[0] = %s", n4, l.Sites()[0].Name)
	}
	handNAT(t, n4)
	sdcOff(t, l, n4)
	pointTable(t, l, a, n4)
	expectEcho(t, l, n4, n4.EIP)
	st := l.Status(ctx)
	var lines []string
	for _, av := range st.Agents {
		lines = append(lines, av.Site+"="+av.Lifecycle)
	}
	if got, want := strings.Join(lines, " "), "a4=Pending:Wait b=InService a2=terminated a3=terminated a=terminated"; got != want {
		t.Fatalf("status lifecycles %q, want %q", got, want)
	}
}

// assertGone checks that a terminated NAT left nothing behind but its record.
func assertGone(t *testing.T, l *Lab, s *Site) {
	t.Helper()
	if l.Live(s.Name) || nsExists(s.NAT.Name) {
		t.Fatalf("nat-%s: live %v, namespace %s exists %v", s.Name, l.Live(s.Name), s.NAT.Name, nsExists(s.NAT.Name))
	}
	if iv, _ := l.Sim.Instance(s.InstanceID); iv.State != vpcsim.StateTerminated {
		t.Fatalf("nat-%s: instance %s", s.Name, iv.State)
	}
	if got, err := l.Site(s.Name); err != nil || got != s {
		t.Fatalf("Site(%s) after termination: %v %v", s.Name, got, err)
	}
	if out, err := l.Router.Run("ip", "-o", "link", "show", s.pubIf()); err == nil {
		t.Fatalf("router leg %s still there: %s", s.pubIf(), out)
	}
	st, err := ReadState(l.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if ns, ok := st.Namespaces["nat-"+s.Name]; ok || st.Pids["imds-"+s.Name] != 0 {
		t.Fatalf("state file still records nat-%s: namespace %q, pids %v", s.Name, ns, st.Pids)
	}
	if l.LifecycleState(s.Name) != vpcsim.StateTerminated {
		t.Fatalf("nat-%s lifecycle %q", s.Name, l.LifecycleState(s.Name))
	}
}

// The lab's IMDS events, read through agent/cloud's client as the agent reads them. Each event
// restarts the NAT's mock, which refuses the client's cached token: the SDK takes a new one.
func TestIMDSEvents(t *testing.T) {
	netns.RequireRoot(t)
	ctx := context.Background()
	l := ownLab(t, Options{NoAgents: true, Name: "imdsev"})
	a, b := l.MustSite("a"), l.MustSite("b")
	c := cloudIn(l, a)
	if st, err := c.TargetLifecycleState(ctx); err != nil || st != TargetInService {
		t.Fatalf("target lifecycle state %q %v, want InService", st, err)
	}
	if n, err := c.SpotInterruption(ctx); err != nil || n != nil {
		t.Fatalf("spot notice at start: %+v %v", n, err)
	}
	if _, ok, err := c.RebalanceRecommendation(ctx); err != nil || ok {
		t.Fatalf("rebalance recommendation at start: %v %v", ok, err)
	}
	old := imdsToken(t, l, a)

	if err := l.SetTargetLifecycleState("a", TargetTerminated); err != nil {
		t.Fatal(err)
	}
	if code := imdsGet(t, l, a, old, "instance-id"); code != http.StatusUnauthorized {
		t.Fatalf("the restarted mock answers the old token with %d, want 401", code)
	}
	if st, err := c.TargetLifecycleState(ctx); err != nil || st != TargetTerminated {
		t.Fatalf("target lifecycle state %q %v, want Terminated", st, err)
	}

	before := time.Now()
	at, err := l.SpotNotice("a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := at.Sub(before); d < DefaultSpotDelay-time.Second || d > DefaultSpotDelay+time.Second || at.Nanosecond() != 0 {
		t.Fatalf("interruption at %s, %s after the notice, want 2m in whole seconds", at, d)
	}
	n, err := c.SpotInterruption(ctx)
	if err != nil || n == nil || n.Action != "terminate" || !n.Time.Equal(at) {
		t.Fatalf("spot notice %+v %v, want terminate at %s", n, err, at)
	}
	// Events add up: the target state is still Terminated.
	if st, err := c.TargetLifecycleState(ctx); err != nil || st != TargetTerminated {
		t.Fatalf("target lifecycle state after the spot notice %q %v", st, err)
	}
	when, err := l.Rebalance("a")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok, err := c.RebalanceRecommendation(ctx); err != nil || !ok || !got.Equal(when) {
		t.Fatalf("rebalance %s %v %v, want %s", got, ok, err, when)
	}
	if n, err := c.SpotInterruption(ctx); err != nil || n == nil || !n.Time.Equal(at) {
		t.Fatalf("spot notice after the rebalance recommendation: %+v %v", n, err)
	}
	// Back to InService (no other NAT's IMDS changed).
	if err := l.SetTargetLifecycleState("a", TargetInService); err != nil {
		t.Fatal(err)
	}
	if st, err := c.TargetLifecycleState(ctx); err != nil || st != TargetInService {
		t.Fatalf("target lifecycle state %q %v, want InService", st, err)
	}
	if n, err := cloudIn(l, b).SpotInterruption(ctx); err != nil || n != nil {
		t.Fatalf("nat-b's spot notice: %+v %v", n, err)
	}

	// At the interruption time the lab terminates the instance.
	at, err = l.SpotNotice("b", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WaitTerminated(ctx, "b", time.Until(at)+10*time.Second); err != nil {
		t.Fatal(err)
	}
	if time.Now().Before(at) {
		t.Fatalf("nat-b terminated before its interruption time %s", at)
	}
	assertGone(t, l, b)
	if _, err := l.SpotNotice("b", 0); err == nil {
		t.Fatal("a spot notice for a terminated NAT accepted")
	}
}

// imdsToken takes an IMDSv2 token from a NAT's mock.
func imdsToken(t *testing.T, l *Lab, s *Site) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+IMDSAddr+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "600")
	resp, err := l.Client(s.NAT.Name, 2*time.Second).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 256)
	k, _ := resp.Body.Read(buf)
	b.Write(buf[:k])
	return strings.TrimSpace(b.String())
}

// imdsGet reads a metadata path with a token and returns the status code.
func imdsGet(t *testing.T, l *Lab, s *Site, token, path string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+IMDSAddr+"/latest/meta-data/"+path, nil)
	req.Header.Set("X-aws-ec2-metadata-token", token)
	resp, err := l.Client(s.NAT.Name, 2*time.Second).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// A NAT launched into a running lab with agents becomes healthy, and when its AZ's first NAT is
// terminated it takes the AZ's table: the private host egresses through it.
func TestLaunchedNATForwardsWithAgent(t *testing.T) {
	netns.RequireRoot(t)
	ctx := context.Background()
	l := ownLab(t, Options{Name: "launchagent", FailbackAfter: testFailback})
	a, b := l.MustSite("a"), l.MustSite("b")
	n, err := l.Launch(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if !l.AgentRunning(n.Name) {
		t.Fatalf("nat-%s's agent not running after Launch", n.Name)
	}
	if err := l.WaitHealthz(ctx, n.Name, 60*time.Second, func(_ api.Healthz, code int) bool { return code == 200 }); err != nil {
		t.Fatal(err)
	}
	if err := l.TerminateNow("a"); err != nil {
		t.Fatal(err)
	}
	waitTarget(t, l, a.RouteTable, n.Name, 30*time.Second)
	if err := l.WaitEgress(ctx, a, n, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if site, st := l.Target(b.RouteTable); site != "b" || st != vpcsim.RouteActive {
		t.Fatalf("table b: %s %s", site, st)
	}
	if err := l.WaitHome(ctx, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

// With a tailnet, a launched NAT's agent logs its own tailscaled in, and the tailnet is whole
// again (every live NAT online and approved) after the NAT that was primary is terminated.
func TestLaunchJoinsTheTailnet(t *testing.T) {
	netns.RequireRoot(t)
	ctx := context.Background()
	l := ownLab(t, Options{Name: "launchtn", Tailnet: true, FailbackAfter: testFailback})
	n, err := l.Launch(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.WaitTailnet(ctx, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	primary, err := l.PrimaryRouter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.TerminateNow(primary); err != nil {
		t.Fatal(err)
	}
	if l.Tailscaled(primary) != nil {
		t.Fatalf("nat-%s's tailscaled still known after its termination", primary)
	}
	if err := l.WaitTailnet(ctx, 90*time.Second); err != nil {
		t.Fatal(err)
	}
	nodes, err := l.TailnetNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, nd := range nodes {
		seen = append(seen, nd.Name)
	}
	if !strings.Contains(strings.Join(seen, ","), n.Name) || !strings.Contains(strings.Join(seen, ","), primary) {
		t.Fatalf("tailnet nodes %v: want the launched nat-%s and the terminated nat-%s named", seen, n.Name, primary)
	}
}

// Refresh replaces every NAT, one at a time, through both hooks; here the test completes the
// hooks as the agents will.
func TestRefreshWithoutAgents(t *testing.T) {
	netns.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := ownLab(t, Options{NoAgents: true, Name: "refresh"})
	hooks := make(chan struct{})
	go func() {
		defer close(hooks)
		for ctx.Err() == nil { // bounded by ctx
			for _, s := range l.NATs() {
				hook := map[string]string{vpcsim.LifecyclePendingWait: LaunchHook, vpcsim.LifecycleTerminatingWait: DrainHook}[l.LifecycleState(s.Name)]
				if hook != "" {
					_, _ = asgIn(l, s.NAT.Name).CompleteLifecycleAction(ctx, &autoscaling.CompleteLifecycleActionInput{
						AutoScalingGroupName: aws.String(ASGName), LifecycleHookName: aws.String(hook),
						LifecycleActionResult: aws.String(vpcsim.ResultContinue), InstanceId: aws.String(s.InstanceID)})
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	var steps []string
	news, err := l.RefreshSteps(ctx, 30*time.Second, func(msg string) { steps = append(steps, msg) })
	cancel()
	<-hooks
	if err != nil {
		t.Fatalf("refresh: %v\nsteps: %q", err, steps)
	}
	if len(news) != 2 || news[0].Name != "a2" || news[1].Name != "b2" || strings.Join(l.NATNames(), ",") != "a2,b2" {
		t.Fatalf("replacements %v, NATs %v", names(news), l.NATNames())
	}
	for _, s := range news {
		if st := l.LifecycleState(s.Name); st != vpcsim.LifecycleInService {
			t.Fatalf("nat-%s %s", s.Name, st)
		}
	}
	for _, old := range l.Terminated() {
		assertGone(t, l, old)
	}
	if len(steps) != 8 || !strings.HasPrefix(steps[0], "launching a replacement of nat-a") || steps[7] != "nat-b terminated" {
		t.Fatalf("steps: %q", steps)
	}
}
