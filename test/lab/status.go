package lab

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/test/vpcsim"
)

// Status is the lab as a whole: what the simulator's route tables point at, what every agent
// says about itself, where the private hosts egress, the route moves and the faults in place.
type Status struct {
	Name       string            `json:"name"`
	Time       time.Time         `json:"time"`
	Tables     []TableView       `json:"tables"`
	Agents     []AgentView       `json:"agents"`
	Hosts      []HostView        `json:"hosts"`
	Echo       string            `json:"echo"`        // the "internet" echo server's URL, in namespace inet
	Namespaces map[string]string `json:"namespaces"`  // role (inet, router, nat-a, host-a, ...) -> namespace
	Moves      []Move            `json:"moves"`       // the last StatusMoves route writes seen by the simulator
	MovesTotal int               `json:"moves_total"` // route writes so far (MoveLog has them all)
	Decisions  []api.Decision    `json:"decisions"`   // last route decisions the agents logged, with reasons
	Faults     []string          `json:"faults"`
	Tailnet    *TailnetView      `json:"tailnet,omitempty"` // nil without a tailnet
}

// StatusMoves is how many route moves Status keeps.
const StatusMoves = 10

// TableView is one private route table.
type TableView struct {
	ID       string `json:"id"`
	Home     string `json:"home"`   // AZ
	Target   string `json:"target"` // the NAT it points at
	TargetIP string `json:"target_ip,omitempty"`
	State    string `json:"state"`
}

// AgentView is one NAT instance and its agent.
type AgentView struct {
	Site     string    `json:"site"` // the NAT's name
	AZ       string    `json:"az"`
	Zone     string    `json:"zone"`
	Instance string    `json:"instance"`
	ENI      string    `json:"eni"`
	IP       string    `json:"ip"`
	EIP      string    `json:"eip"`
	LinkUp   bool      `json:"link_up"`
	Pid      int       `json:"pid"` // 0 when not running
	Agent    AgentProc `json:"agent"`
	// Lifecycle is the instance's state in the ASG (LifecycleState): Pending:Wait, InService,
	// Terminating:Wait, ... or terminated.
	Lifecycle string       `json:"lifecycle,omitempty"`
	Code      int          `json:"code"`
	Healthz   *api.Healthz `json:"healthz,omitempty"`
	Error     string       `json:"error,omitempty"`
}

// HostView is one private host and where its traffic leaves now.
type HostView struct {
	Name    string `json:"name"` // host-a
	AZ      string `json:"az"`
	IP      string `json:"ip"`
	Gateway string `json:"gateway"`
	Table   string `json:"route_table"`
	Via     string `json:"via,omitempty"`  // the NAT whose EIP the echo server saw
	Seen    string `json:"seen,omitempty"` // the address the echo server saw
	Error   string `json:"error,omitempty"`
}

// Status gathers the lab's status. Agents that do not answer are reported with their error,
// hosts that cannot reach the echo server with theirs.
func (l *Lab) Status(ctx context.Context) Status {
	st := Status{Name: l.opts.Name, Time: time.Now().UTC(), Echo: EchoURL(), Namespaces: map[string]string{}}
	l.mu.Lock()
	for role, ns := range l.state.Namespaces {
		st.Namespaces[role] = ns
	}
	l.mu.Unlock()
	for _, s := range l.Sites() {
		tv := TableView{ID: s.RouteTable, Home: s.AZ, State: "missing"}
		if r, ok := l.Sim.Route(s.RouteTable); ok {
			tv.State = r.State
			if t := l.siteByENI(r.NetworkInterfaceID); t != nil {
				tv.Target, tv.TargetIP = t.Name, t.NATIP
			} else {
				tv.Target = r.NetworkInterfaceID
			}
		}
		st.Tables = append(st.Tables, tv)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	nats := l.NATs()
	st.Agents = make([]AgentView, len(nats))
	for i, s := range nats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ag, _ := l.Agent(s.Name)
			av := AgentView{Site: s.Name, AZ: s.AZ, Zone: s.Zone, Instance: s.InstanceID, ENI: s.ENI, IP: s.NATIP, EIP: s.EIP,
				Pid: ag.Pid, Agent: ag, LinkUp: l.linkUp(s), Lifecycle: l.LifecycleState(s.Name)}
			hz, code, err := l.Healthz(ctx, s.Name)
			if err != nil {
				av.Error = err.Error()
			} else {
				av.Code, av.Healthz = code, &hz
			}
			if av.Pid != 0 {
				if as, err := l.AgentStatus(ctx, s.Name); err == nil {
					l.mergeDecisions(as.Decisions)
				}
			}
			mu.Lock()
			st.Agents[i] = av
			mu.Unlock()
		}()
	}
	sites := l.Sites()
	st.Hosts = make([]HostView, len(sites))
	for i, s := range sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hv := HostView{Name: "host-" + s.AZ, AZ: s.AZ, IP: s.HostIP, Gateway: s.RouterPrv, Table: s.RouteTable}
			seen, err := l.Echo(ctx, s, time.Second)
			if err != nil {
				hv.Error = err.Error()
			} else {
				hv.Seen = seen
				if v := l.SiteByEIP(seen); v != nil {
					hv.Via = v.Name
				}
			}
			mu.Lock()
			st.Hosts[i] = hv
			mu.Unlock()
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tv := l.tailnetView(ctx)
		mu.Lock()
		st.Tailnet = tv
		mu.Unlock()
	}()
	wg.Wait()
	st.Agents = append(st.Agents, l.terminatedViews()...)
	st.Decisions = l.Decisions()
	if n := len(st.Decisions); n > 50 {
		st.Decisions = st.Decisions[n-50:]
	}
	st.Moves = l.Moves()
	st.MovesTotal = len(st.Moves)
	if n := len(st.Moves); n > StatusMoves {
		st.Moves = st.Moves[n-StatusMoves:]
	}
	st.Faults, _ = l.Faults()
	return st
}

// StatusTerminated is how many terminated NATs Status lists, the latest ones.
const StatusTerminated = 8

// terminatedViews lists the NATs terminated last, without probing what is gone.
func (l *Lab) terminatedViews() []AgentView {
	gone := l.Terminated()
	if n := len(gone); n > StatusTerminated {
		gone = gone[n-StatusTerminated:]
	}
	var out []AgentView
	for _, s := range gone {
		out = append(out, AgentView{Site: s.Name, AZ: s.AZ, Zone: s.Zone, Instance: s.InstanceID, ENI: s.ENI, IP: s.NATIP,
			EIP: s.EIP, Agent: AgentProc{State: ProcStopped}, Lifecycle: l.LifecycleState(s.Name)})
	}
	return out
}

// MoveLog is every route move so far with the agents' decisions behind them.
type MoveLog struct {
	Moves     []Move         `json:"moves"`
	Decisions []api.Decision `json:"decisions"`
}

// MoveLog returns every route move so far and the decisions the lab collected.
func (l *Lab) MoveLog() MoveLog { return MoveLog{Moves: l.Moves(), Decisions: l.Decisions()} }

// labCmd is how a person reaches this lab with headnat-lab.
func labCmd(name string) string {
	if name == "" || name == "lab" {
		return "headnat-lab"
	}
	return "headnat-lab -name " + name
}

// WriteStatus prints a status for people.
func WriteStatus(w io.Writer, st Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "lab %s at %s\n\n", st.Name, st.Time.Local().Format("15:04:05"))
	fmt.Fprintln(tw, "ROUTE TABLE\tHOME\tDEFAULT ROUTE\tSTATE")
	for _, t := range st.Tables {
		target := "-"
		if t.Target != "" {
			target = "nat-" + t.Target
			if t.TargetIP != "" {
				target += " (" + t.TargetIP + ")"
			}
		}
		fmt.Fprintf(tw, "%s\tprivate-%s\t%s\t%s\n", t.ID, t.Home, target, t.State)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "NAT\tINSTANCE\tLIFECYCLE\tEIP\tLINK\tAGENT\t/healthz\tTABLES\tREASONS")
	for _, a := range st.Agents {
		link := "down"
		if a.LinkUp {
			link = "up"
		}
		lifecycle := a.Lifecycle
		if lifecycle == "" {
			lifecycle = "-"
		}
		if a.Lifecycle == vpcsim.StateTerminated {
			fmt.Fprintf(tw, "nat-%s %s\t%s\t%s\t%s\t-\t-\t-\t-\t-\n", a.Site, a.IP, a.Instance, lifecycle, a.EIP)
			continue
		}
		agent := a.Agent.State
		if a.Pid != 0 {
			agent = fmt.Sprintf("pid %d", a.Pid)
		}
		if a.Agent.Restarts > 0 {
			agent += fmt.Sprintf(", restarts: %d", a.Agent.Restarts)
		}
		hz, tables, reasons := "-", "-", "-"
		switch {
		case a.Healthz != nil:
			hz = fmt.Sprintf("%d", a.Code)
			if len(a.Healthz.Tables) > 0 {
				tables = strings.Join(a.Healthz.Tables, ",")
			}
			if len(a.Healthz.Reasons) > 0 {
				reasons = strings.Join(a.Healthz.Reasons, "; ")
			}
		case a.Error != "":
			hz = "unreachable"
		}
		fmt.Fprintf(tw, "nat-%s %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Site, a.IP, a.Instance, lifecycle, a.EIP, link, agent, hz, tables, reasons)
	}
	if len(st.Hosts) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "PRIVATE HOST\tADDRESS\tGATEWAY\tROUTE TABLE\tINTERNET NOW")
		for _, h := range st.Hosts {
			now := "no answer from the echo server"
			switch {
			case h.Via != "":
				now = fmt.Sprintf("via nat-%s (the echo server sees %s)", h.Via, h.Seen)
			case h.Seen != "":
				now = "the echo server sees " + h.Seen
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Name, h.IP, h.Gateway, h.Table, now)
		}
	}
	if tv := st.Tailnet; tv != nil && tv.Error == "" {
		fmt.Fprintln(tw)
		fmt.Fprintf(tw, "TAILNET NODE\tHOSTNAME\tTAILNET IP\tONLINE\tROUTE %s\n", tv.Route)
		for _, n := range tv.Nodes {
			name, route := n.Name, "-"
			switch {
			case name == "":
				name = "?"
			case name != AdminHostname:
				name = "nat-" + name
			}
			switch {
			case n.Primary:
				route = "approved, primary router"
			case n.Approved:
				route = "approved, standby"
			case n.Name != AdminHostname:
				route = "not approved"
			}
			online := "no"
			if n.Online {
				online = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, n.Hostname, n.IP, online, route)
		}
	}
	tw.Flush()
	if tv := st.Tailnet; tv != nil {
		fmt.Fprintf(w, "\ntailnet: headscale at %s (namespace inet)", tv.Headscale)
		switch {
		case tv.Error != "":
			fmt.Fprintf(w, " does not answer: %s\n", tv.Error)
		case tv.Primary != "":
			fmt.Fprintf(w, "; the admin (%s, namespace admin) reaches the VPC through nat-%s, the primary router.\n", AdminAddr, tv.Primary)
		default:
			fmt.Fprintf(w, "; no NAT is the primary router: the admin (%s) reaches nothing in the VPC.\n", AdminAddr)
		}
		if len(st.Hosts) > 0 {
			fmt.Fprintf(w, "  e.g. %s admin curl http://%s/   (the service answers with the address it sees)\n", labCmd(st.Name), st.Hosts[0].IP)
		}
		for _, n := range tv.Nodes {
			if n.Name != AdminHostname && n.Name != "" && n.IP != "" {
				fmt.Fprintf(w, "  a shell on nat-%s: %s exec admin -- ssh root@%s   (tailscale SSH: admins only, no key)\n", n.Name, labCmd(st.Name), n.IP)
				break
			}
		}
	}
	if st.Echo != "" {
		fmt.Fprintf(w, "\ninternet: an echo server at %s (namespace inet) answers with the address it sees.\n", st.Echo)
	}
	if len(st.Namespaces) > 0 {
		roles := make([]string, 0, len(st.Namespaces))
		for r := range st.Namespaces {
			roles = append(roles, r)
		}
		sort.Strings(roles)
		fmt.Fprintf(w, "run a command in the lab: %s exec <%s> -- <command>\n", labCmd(st.Name), strings.Join(roles, "|"))
		if len(st.Hosts) > 0 && st.Echo != "" {
			fmt.Fprintf(w, "  e.g. %s exec %s -- curl -s %s\n", labCmd(st.Name), st.Hosts[0].Name, st.Echo)
		}
	}
	if len(st.Faults) > 0 {
		fmt.Fprintln(w, "\nfaults:")
		for _, f := range st.Faults {
			fmt.Fprintln(w, "  "+f)
		}
	}
	head := "route moves (simulator), with the deciding agent's reason"
	if st.MovesTotal > len(st.Moves) {
		head += fmt.Sprintf("; the last %d of %d (all: %s moves)", len(st.Moves), st.MovesTotal, labCmd(st.Name))
	}
	fmt.Fprintf(w, "\n%s:\n", head)
	used := writeMoves(w, st.Moves, st.Decisions)
	var other []api.Decision
	for i, d := range st.Decisions {
		if !used[i] && d.Result != "ok" {
			other = append(other, d)
		}
	}
	if len(other) > 0 {
		fmt.Fprintln(w, "\nroute decisions that moved nothing:")
		for _, d := range other {
			line := fmt.Sprintf("  %s  %s %s -> %s: %s [%s]", d.Time.Local().Format("15:04:05.000"), d.Kind, d.Table, d.Target, d.Reason, d.Result)
			if d.Error != "" {
				line += " " + d.Error
			}
			fmt.Fprintln(w, line)
		}
	}
}

// WriteMoves prints every route move of a MoveLog, with the deciding agent's reason.
func WriteMoves(w io.Writer, ml MoveLog) {
	fmt.Fprintf(w, "route moves (simulator), all %d, with the deciding agent's reason:\n", len(ml.Moves))
	writeMoves(w, ml.Moves, ml.Decisions)
}

// writeMoves prints moves, each with its matching decision; it returns the decisions used.
func writeMoves(w io.Writer, moves []Move, ds []api.Decision) map[int]bool {
	if len(moves) == 0 {
		fmt.Fprintln(w, "  none")
	}
	used := map[int]bool{}
	for _, m := range moves {
		line := fmt.Sprintf("  %s  %s private-%s -> nat-%s", m.Time.Local().Format("15:04:05.000"), m.Action, m.TableAZ, m.TargetAZ)
		if i := matchDecision(ds, m, used); i >= 0 {
			used[i] = true
			line += fmt.Sprintf(": %s, %s", ds[i].Kind, ds[i].Reason)
		}
		fmt.Fprintln(w, line)
	}
	return used
}

// matchDecision finds the agent decision behind a move: same table and ENI, logged within two
// seconds before the simulator accepted the write.
func matchDecision(ds []api.Decision, m Move, used map[int]bool) int {
	for i, d := range ds {
		if used[i] || d.Table != m.Table || d.TargetENI != m.ENI || d.Result != "ok" {
			continue
		}
		if dt := m.Time.Sub(d.Time); dt >= -time.Second && dt <= 2*time.Second {
			return i
		}
	}
	return -1
}

// mergeDecisions adds agents' decisions to the lab's record, once each.
func (l *Lab) mergeDecisions(ds []api.Decision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seenDecision == nil {
		l.seenDecision = map[string]bool{}
	}
	for _, d := range ds {
		k := fmt.Sprintf("%d/%s/%s/%s", d.Time.UnixNano(), d.Table, d.Target, d.Kind)
		if l.seenDecision[k] {
			continue
		}
		l.seenDecision[k] = true
		l.decisions = append(l.decisions, d)
	}
	sort.SliceStable(l.decisions, func(i, j int) bool { return l.decisions[i].Time.Before(l.decisions[j].Time) })
	if n := len(l.decisions); n > 1000 {
		l.decisions = l.decisions[n-500:]
	}
}

// Decisions returns the route decisions the agents reported so far (kept after an agent dies),
// oldest first.
func (l *Lab) Decisions() []api.Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]api.Decision(nil), l.decisions...)
}

// watchDecisions collects the agents' decisions every second until ctx ends, so that the
// reasons of an agent that dies later are not lost.
func (l *Lab) watchDecisions(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, s := range l.NATs() {
			if l.AgentPid(s.Name) == 0 {
				continue
			}
			if as, err := l.AgentStatus(ctx, s.Name); err == nil {
				l.mergeDecisions(as.Decisions)
			}
		}
	}
}
