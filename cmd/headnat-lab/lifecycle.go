package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/headnat/headnat/test/lab"
)

// The instance lifecycle commands: spot, rebalance, terminate, launch, refresh, drain and
// undrain. They may take minutes; refresh streams its steps, one line each.

// errLine starts the line a streamed command ends with when it fails.
const errLine = "ERROR: "

// lifecycleHandlers serves the lifecycle commands on the control socket.
func lifecycleHandlers(mux *http.ServeMux, l *lab.Lab) {
	for _, cmd := range []string{"spot", "rebalance", "terminate", "launch", "drain", "undrain"} {
		mux.HandleFunc("POST /"+cmd, func(w http.ResponseWriter, r *http.Request) {
			msg, err := lifecycle(r.Context(), l, cmd, r.URL.Query())
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintln(w, msg)
		})
	}
	mux.HandleFunc("POST /refresh", func(w http.ResponseWriter, r *http.Request) {
		timeout, err := time.ParseDuration(r.URL.Query().Get("timeout"))
		if err != nil {
			http.Error(w, "timeout: "+err.Error(), http.StatusBadRequest)
			return
		}
		fl, _ := w.(http.Flusher)
		say := func(msg string) {
			fmt.Fprintf(w, "%s  %s\n", time.Now().Format("15:04:05"), msg)
			if fl != nil {
				fl.Flush()
			}
		}
		news, err := l.RefreshSteps(r.Context(), timeout, say)
		if err != nil {
			fmt.Fprintf(w, "%s%v\n", errLine, err)
			return
		}
		var names []string
		for _, s := range news {
			names = append(names, "nat-"+s.Name)
		}
		say("instance refresh done: " + strings.Join(names, ", "))
	})
}

// lifecycle runs one lifecycle command and says what happened.
func lifecycle(ctx context.Context, l *lab.Lab, cmd string, q url.Values) (string, error) {
	arg := q.Get("nat")
	timeout, _ := time.ParseDuration(q.Get("timeout"))
	if timeout <= 0 {
		timeout = 3 * time.Minute
	}
	switch cmd {
	case "launch":
		s, err := l.Launch(ctx, arg)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("nat-%s launched in %s: instance %s, %s, EIP %s; %s (its agent completes the launch hook %s)",
			s.Name, s.Zone, s.InstanceID, s.NATIP, s.EIP, l.LifecycleState(s.Name), lab.LaunchHook), nil
	case "drain", "undrain":
		var out string
		var err error
		if cmd == "undrain" {
			out, err = l.Undrain(ctx, arg)
		} else {
			out, err = l.Drain(ctx, arg)
		}
		return strings.TrimRight(out, "\n"), err
	}
	s, err := l.Site(arg)
	if err != nil {
		return "", err
	}
	switch cmd {
	case "spot":
		delay, err := time.ParseDuration(q.Get("delay"))
		if err != nil {
			return "", fmt.Errorf("delay: %w", err)
		}
		at, err := l.SpotNotice(s.Name, delay)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("nat-%s's IMDS serves a spot interruption notice (action terminate, time %s); the lab terminates the instance then, in %s",
			s.Name, at.UTC().Format(time.RFC3339), spotDelay(delay)), nil
	case "rebalance":
		at, err := l.Rebalance(s.Name)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("nat-%s's IMDS serves a rebalance recommendation (noticeTime %s)", s.Name, at.UTC().Format(time.RFC3339)), nil
	case "terminate":
		if err := l.Terminate(ctx, s.Name, timeout); err != nil {
			return "", err
		}
		return fmt.Sprintf("nat-%s: its terminate lifecycle action (%s) finished; the instance is terminated", s.Name, lab.DrainHook), nil
	}
	return "", fmt.Errorf("unknown command %q", cmd)
}

// streamControl posts a command whose answer comes line by line, copying each line as it
// arrives; a last line starting with errLine makes it fail.
func streamControl(ctx context.Context, o *options, q url.Values) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://lab/"+o.Command+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	c := controlClient(o.dir())
	c.Timeout = 0 // bounded by the lab's own timeouts and ctx
	resp, err := c.Do(req)
	if err != nil {
		return notUp(o, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("%s: %s", o.Command, strings.TrimSpace(string(b)))
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if msg, ok := strings.CutPrefix(line, errLine); ok {
			return fmt.Errorf("%s: %s", o.Command, msg)
		}
		fmt.Fprintln(o.stdout, line)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", o.Command, err)
	}
	return nil
}

// longCommands wait on the lab for up to -timeout per step: no client timeout of their own.
var longCommands = map[string]bool{"terminate": true, "launch": true, "refresh": true, "drain": true, "undrain": true}

// spotDelay is the notice's lead time as SpotNotice applies it (whole seconds from the notice,
// which starts on a whole second).
func spotDelay(d time.Duration) time.Duration {
	if d <= 0 {
		d = lab.DefaultSpotDelay
	}
	return d.Round(time.Second)
}
