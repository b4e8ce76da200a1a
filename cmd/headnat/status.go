package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/headnat/headnat/agent/api"
)

func statusMain(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("headnat status", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	addr := fs.String("addr", "127.0.0.1:7070", "address of the local agent's HTTP server")
	asJSON := fs.Bool("json", false, "print the raw /status JSON")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: headnat status [--addr HOST:PORT] [--json]

Prints who serves which route table and why, the peers and recent decisions, from the local
agent's /status.

  --addr HOST:PORT  address of the local agent's HTTP server (default 127.0.0.1:7070)
  --json            print the raw /status JSON
`)
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %v", fs.Args())
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+*addr+api.PathStatus, nil)
	if err != nil {
		return usagef("bad --addr: %v", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("is the agent running? %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status: HTTP %d", resp.StatusCode)
	}
	if *asJSON {
		_, err := e.stdout.Write(body)
		return err
	}
	var st api.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	printStatus(e.stdout, st)
	return nil
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
	fmt.Fprintln(tw, "INSTANCE\tAZ\tHEALTH\tSINCE\tDETAIL")
	selfDetail := "this instance"
	if !st.Self.Healthy {
		selfDetail = strings.Join(st.Self.Reasons, "; ")
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.Self.Instance, st.Self.AZ, health(st.Self.Healthy, st.Self.Draining), "-", selfDetail)
	for _, p := range st.Peers {
		detail := p.LastError
		if p.PresumedAlive != "" {
			detail = "keeps its tables: " + p.PresumedAlive
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.AZ, health(p.Healthy, p.Draining), ago(p.Since), detail)
	}
	tw.Flush()
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
	if tn.Withdrawn {
		out += "tailnet: routes withdrawn (draining)\n"
	}
	if tn.Error != "" {
		out += "tailnet: " + tn.Error + "\n"
	}
	return out
}
