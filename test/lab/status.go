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
)

// Status is the lab as a whole: what the simulator's route tables point at, what every agent
// says about itself, the route moves and the faults in place.
type Status struct {
	Name      string         `json:"name"`
	Time      time.Time      `json:"time"`
	Tables    []TableView    `json:"tables"`
	Agents    []AgentView    `json:"agents"`
	Moves     []Move         `json:"moves"`     // last route writes seen by the simulator
	Decisions []api.Decision `json:"decisions"` // last route decisions the agents logged, with reasons
	Faults    []string       `json:"faults"`
}

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
	Site     string       `json:"site"` // the NAT's name
	Zone     string       `json:"zone"`
	Instance string       `json:"instance"`
	ENI      string       `json:"eni"`
	IP       string       `json:"ip"`
	EIP      string       `json:"eip"`
	LinkUp   bool         `json:"link_up"`
	Pid      int          `json:"pid"` // 0 when not running
	Code     int          `json:"code"`
	Healthz  *api.Healthz `json:"healthz,omitempty"`
	Error    string       `json:"error,omitempty"`
}

// Status gathers the lab's status. Agents that do not answer are reported with their error.
func (l *Lab) Status(ctx context.Context) Status {
	st := Status{Name: l.opts.Name, Time: time.Now().UTC()}
	for _, s := range l.Sites {
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
	st.Agents = make([]AgentView, len(l.NATs))
	for i, s := range l.NATs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			av := AgentView{Site: s.Name, Zone: s.Zone, Instance: s.InstanceID, ENI: s.ENI, IP: s.NATIP, EIP: s.EIP, Pid: l.AgentPid(s.Name)}
			if out, err := s.NAT.Run("ip", "-o", "link", "show", "eth0"); err == nil {
				av.LinkUp = strings.Contains(out, ",UP") || strings.Contains(out, "<UP")
			}
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
	wg.Wait()
	st.Decisions = l.Decisions()
	if n := len(st.Decisions); n > 50 {
		st.Decisions = st.Decisions[n-50:]
	}
	st.Moves = l.Moves()
	if n := len(st.Moves); n > 10 {
		st.Moves = st.Moves[n-10:]
	}
	st.Faults, _ = l.Faults()
	return st
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
	fmt.Fprintln(tw, "NAT\tINSTANCE\tLINK\tAGENT\t/healthz\tTABLES\tREASONS")
	for _, a := range st.Agents {
		link := "down"
		if a.LinkUp {
			link = "up"
		}
		agent := "dead"
		if a.Pid != 0 {
			agent = fmt.Sprintf("pid %d", a.Pid)
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
		fmt.Fprintf(tw, "nat-%s %s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Site, a.IP, a.Instance, link, agent, hz, tables, reasons)
	}
	tw.Flush()
	if len(st.Faults) > 0 {
		fmt.Fprintln(w, "\nfaults:")
		for _, f := range st.Faults {
			fmt.Fprintln(w, "  "+f)
		}
	}
	fmt.Fprintln(w, "\nroute moves (simulator), with the deciding agent's reason:")
	if len(st.Moves) == 0 {
		fmt.Fprintln(w, "  none")
	}
	used := map[int]bool{}
	for _, m := range st.Moves {
		line := fmt.Sprintf("  %s  %s private-%s -> nat-%s", m.Time.Local().Format("15:04:05.000"), m.Action, m.TableAZ, m.TargetAZ)
		if i := matchDecision(st.Decisions, m, used); i >= 0 {
			used[i] = true
			line += fmt.Sprintf(": %s, %s", st.Decisions[i].Kind, st.Decisions[i].Reason)
		}
		fmt.Fprintln(w, line)
	}
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
		for _, s := range l.NATs {
			if l.AgentPid(s.Name) == 0 {
				continue
			}
			if as, err := l.AgentStatus(ctx, s.Name); err == nil {
				l.mergeDecisions(as.Decisions)
			}
		}
	}
}
