//go:build unix

package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The trial child: when trialExeEnv is set, the test binary runs the engine
// on the program at that path as an app would: it stops cleanly (cancels
// its context and calls Close) on SIGTERM, and dies on SIGKILL. It prints
// "verified" once the engine runs, "rolled back" if it rolled back.
const (
	trialExeEnv = "CLIENT_TEST_TRIAL_EXE"
	trialKeyEnv = "CLIENT_TEST_TRIAL_KEY"
)

func trialChild() int {
	cfg, err := childConfig(os.Getenv(trialExeEnv), os.Getenv(trialKeyEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 11
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cfg.HealthyAfter = time.Hour
	cfg.OnEvent = func(e Event) {
		switch e.Kind {
		case EventVerified:
			fmt.Fprintln(os.Stderr, "verified")
		case EventRolledBack:
			fmt.Fprintln(os.Stderr, "rolled back")
		}
	}
	cfg.restart = func(string, []string, []string) error { return errors.New("no restart in this test") }
	u, err := spawn(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 12
	}
	<-ctx.Done()
	u.Close()
	return 0
}

// TestTrialStops runs an update on trial in child processes, three starts in
// a row, each stopped before it becomes healthy: stopped with SIGTERM (the
// app cancels its context and calls Close) no start counts and the update
// stays; killed with SIGKILL, the third start rolls it back.
func TestTrialStops(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		sig      syscall.Signal
		rollback bool
	}{
		{"SIGTERM", syscall.SIGTERM, false},
		{"SIGKILL", syscall.SIGKILL, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			r.onTrial(0)
			rolledBack := false
			for start := 1; start <= defaultMaxUnhealthyStarts+1; start++ {
				line, err := runTrialChild(t, r, tt.sig)
				if err != nil {
					t.Fatalf("start %d: %v", start, err)
				}
				if line == "rolled back" {
					rolledBack = true
					if start != defaultMaxUnhealthyStarts+1 {
						t.Fatalf("rolled back at start %d", start)
					}
				}
				st, err := loadState(r.exe)
				if err != nil {
					t.Fatal(err)
				}
				if !rolledBack {
					want := 0
					if tt.sig == syscall.SIGKILL {
						want = start
					}
					if st.Starts != want || st.New == "" {
						t.Errorf("after start %d stopped by %v: state %+v, want %d unhealthy starts", start, tt.sig, st, want)
					}
				}
			}
			if rolledBack != tt.rollback {
				t.Errorf("rolled back: %v, want %v", rolledBack, tt.rollback)
			}
			got, err := os.ReadFile(r.exe)
			if err != nil {
				t.Fatal(err)
			}
			if back := bytes.Equal(got, r.oldData); back != tt.rollback {
				t.Errorf("the executable is the previous binary: %v, want %v", back, tt.rollback)
			}
		})
	}
}

// runTrialChild starts the trial child on the rig's executable, waits for
// it to say "verified" or "rolled back", stops it with sig and returns what
// it said. A child stopped with SIGTERM must exit with status 0.
func runTrialChild(t *testing.T, r *rig, sig syscall.Signal) (string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), trialExeEnv+"="+r.exe, trialKeyEnv+"="+r.key.PublicText)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	said := make(chan string, 1)
	var out strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if l := sc.Text(); l == "verified" || l == "rolled back" {
				select {
				case said <- l:
				default:
				}
			}
		}
		close(said)
	}()
	var line string
	select {
	case line = <-said:
	case <-time.After(30 * time.Second):
	}
	cmd.Process.Signal(sig)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		err = <-done
		return "", fmt.Errorf("the child did not stop within 30s of %v: %v\n%s", sig, err, out.String())
	}
	if line == "" {
		return "", fmt.Errorf("the child said neither verified nor rolled back: %v\n%s", err, out.String())
	}
	if sig == syscall.SIGTERM && err != nil {
		return "", fmt.Errorf("stopped with SIGTERM: %v, want status 0\n%s", err, out.String())
	}
	t.Logf("child said %q; output:\n%s", line, out.String())
	return line, nil
}
