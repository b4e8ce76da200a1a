package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/agent/control"
)

// statusCmd is `headnat status`: read the local agent's view over its HTTP port or its
// control socket, and print it.
type statusCmd struct {
	addr   string
	socket string // when set, used instead of addr
	json   bool
}

func statusMain(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("headnat status", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c statusCmd
	fs.StringVar(&c.addr, "addr", "127.0.0.1:7070", "address of the local agent's HTTP server")
	fs.StringVar(&c.socket, "socket", "", "read the status over the agent's control socket instead")
	fs.BoolVar(&c.json, "json", false, "print the raw /status JSON")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: headnat status [--addr HOST:PORT | --socket PATH] [--json]

Prints who serves which route table and why, the instances' lifecycle (draining, and why),
their public addresses, the peers and recent decisions, from the local agent's /status.

  --addr HOST:PORT  address of the local agent's HTTP server (default 127.0.0.1:7070)
  --socket PATH     read the status over the agent's control socket instead (e.g. %s)
  --json            print the raw /status JSON
`, config.Default().ControlSocket)
	}
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	return c.run(ctx, e.stdout)
}

func (c statusCmd) run(ctx context.Context, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var body []byte
	var st api.Status
	if c.socket != "" {
		var err error
		if st, err = control.Status(ctx, c.socket); err != nil {
			return err
		}
		if body, err = json.Marshal(st); err != nil {
			return fmt.Errorf("encode status: %w", err)
		}
		body = append(body, '\n')
	} else {
		var err error
		if body, err = httpStatus(ctx, c.addr); err != nil {
			return err
		}
		if err := json.Unmarshal(body, &st); err != nil {
			return fmt.Errorf("decode status: %w", err)
		}
	}
	if c.json {
		_, err := w.Write(body)
		return err
	}
	printStatus(w, st)
	return nil
}

// httpStatus reads /status from the agent's HTTP server at addr.
func httpStatus(ctx context.Context, addr string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+api.PathStatus, nil)
	if err != nil {
		return nil, usagef("bad --addr: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("is the agent running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("read status: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status: HTTP %d", resp.StatusCode)
	}
	return body, nil
}

func printStatus(w io.Writer, st api.Status) {
	now := st.Time
	health := func(ok, draining bool) string {
		switch {
		case draining:
			return "draining"
		case ok:
			return "healthy"
		}
		return "UNHEALTHY"
	}
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return now.Sub(t).Round(time.Second).String() + " ago"
	}
	fmt.Fprintf(w, "cluster %s  (seen from %s, %s)\n\n", st.Config.Cluster, st.Self.Instance, st.Self.AZ)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tAZ\tHEALTH\tLIFECYCLE\tPUBLIC IP\tSINCE\tDETAIL")
	selfDetail := "this instance"
	if !st.Self.Healthy {
		selfDetail = strings.Join(st.Self.Reasons, "; ")
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", st.Self.Instance, st.Self.AZ, health(st.Self.Healthy, st.Self.Draining),
		lifecycleText(st.Self.Lifecycle, st.Self.Draining, st.Self.DrainReason), orDash(st.Self.PublicIP), "-", selfDetail)
	for _, p := range st.Peers {
		detail := p.LastError
		if p.PresumedAlive != "" {
			detail = "keeps its tables: " + p.PresumedAlive
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.AZ, health(p.Healthy, p.Draining),
			lifecycleText(p.Lifecycle, p.Draining, p.DrainReason), orDash(p.PublicIP), ago(p.Since), detail)
	}
	tw.Flush()
	if l := eipLine(st.Self); l != "" {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE TABLE\tHOME AZ\tSERVED BY\tSTATE\tSINCE\tPREFERRED OWNER")
	for _, t := range st.Tables {
		target := t.TargetInstance
		if target == "" {
			target = t.TargetENI
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.HomeAZ, target, t.State, ago(t.HeldSince), t.PreferredOwner)
	}
	tw.Flush()
	if len(st.Decisions) > 0 {
		fmt.Fprintln(w, "\nrecent route writes:")
		for _, d := range st.Decisions {
			fmt.Fprintf(w, "  %s %s %s -> %s (%s): %s\n", d.Time.Format(time.TimeOnly), d.Kind, d.Table, d.Target, d.Result, d.Reason)
		}
	}
	for _, f := range st.Findings {
		fmt.Fprintf(w, "data plane: %s\n", f.Detail)
	}
	if tn := st.Self.Tailnet; tn != nil {
		fmt.Fprintln(w)
		fmt.Fprint(w, tailnetLine(*tn))
	}
}

// lifecycleText is an instance's lifecycle stage, with what started its drain.
func lifecycleText(stage string, draining bool, reason string) string {
	if stage == "" && draining {
		stage = api.LifecycleDraining
	}
	switch {
	case stage == "":
		return "-"
	case (stage == api.LifecycleDraining || stage == api.LifecycleDrained) && reason != "":
		return stage + " (" + reason + ")"
	}
	return stage
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// eipLine says where this instance's egress address comes from when the EIP pool is on.
func eipLine(self api.Healthz) string {
	if self.EIP == nil {
		return ""
	}
	ip := self.EIP.PublicIP
	if ip == "" {
		ip = self.PublicIP
	}
	if self.EIP.AllocationID != "" {
		if ip == "" {
			return fmt.Sprintf("egress address: Elastic IP %s from the pool (address not known yet)", self.EIP.AllocationID)
		}
		return fmt.Sprintf("egress address %s: Elastic IP %s from the pool", ip, self.EIP.AllocationID)
	}
	why := self.EIP.Error
	if why == "" {
		why = "none assigned yet"
	}
	if ip == "" {
		return "egress address unknown: no Elastic IP from the pool: " + why
	}
	return fmt.Sprintf("egress address %s: not from the Elastic IP pool: %s", ip, why)
}

// tailnetLine says what this instance is on the tailnet, in one or two lines.
func tailnetLine(tn api.Tailnet) string {
	approved := "routes NOT approved by headscale"
	if tn.Approved {
		approved = "routes approved"
	}
	primary := "standby router"
	if len(tn.Primary) > 0 {
		primary = "PRIMARY router for " + strings.Join(tn.Primary, ", ")
	}
	ip := tn.IP
	if ip == "" {
		ip = "no tailnet IP"
	}
	out := fmt.Sprintf("tailnet: %s %s (%s), %s, advertising %s: %s, %s\n", tn.Backend, tn.Hostname, ip,
		map[bool]string{true: "DEGRADED", false: "ok"}[tn.Degraded], strings.Join(tn.Advertised, ", "), approved, primary)
	if tn.SSH {
		out += "tailnet: tailscale SSH on (for whom headscale's policy allows)\n"
	}
	if tn.Withdrawn {
		out += "tailnet: routes withdrawn (draining)\n"
	}
	if tn.Error != "" {
		out += "tailnet: " + tn.Error + "\n"
	}
	return out
}
