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
	Home     string `json:"home"`   // site
	Target   string `json:"target"` // site of the NAT it points at
	TargetIP string `json:"target_ip,omitempty"`
	State    string `json:"state"`
}

// AgentView is one NAT instance and its agent.
type AgentView struct {
	Site     string       `json:"site"`
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
		tv := TableView{ID: s.RouteTable, Home: s.Name, State: "missing"}
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
	st.Agents = make([]AgentView, len(l.Sites))
	for i, s := range l.Sites {
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
			var ds []api.Decision
			if av.Pid != 0 {
				if as, err := l.AgentStatus(ctx, s.Name); err == nil {
					ds = as.Decisions
				}
			}
			mu.Lock()
			st.Agents[i] = av
			st.Decisions = append(st.Decisions, ds...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.SliceStable(st.Decisions, func(i, j int) bool { return st.Decisions[i].Time.Before(st.Decisions[j].Time) })
	if n := len(st.Decisions); n > 10 {
		st.Decisions = st.Decisions[n-10:]
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
	fmt.Fprintln(w, "\nroute moves (simulator):")
	if len(st.Moves) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, m := range st.Moves {
		fmt.Fprintf(w, "  %s  %s private-%s -> nat-%s (%s)\n", m.Time.Local().Format("15:04:05.000"), m.Action, m.TableAZ, m.TargetAZ, m.ENI)
	}
	if len(st.Decisions) > 0 {
		fmt.Fprintln(w, "\nroute decisions (agents):")
		for _, d := range st.Decisions {
			line := fmt.Sprintf("  %s  %s %s -> %s: %s [%s]", d.Time.Local().Format("15:04:05.000"), d.Kind, d.Table, d.Target, d.Reason, d.Result)
			if d.Error != "" {
				line += " " + d.Error
			}
			fmt.Fprintln(w, line)
		}
	}
}
