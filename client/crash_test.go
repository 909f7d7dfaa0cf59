//go:build unix

package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/selfreplace"
	"github.com/org/rustpatcher-go/region"
)

// The crash child: when crashStepEnv is set, the test binary runs the
// engine on the program at crashExeEnv with releases from crashRelsEnv and
// SIGKILLs itself at that step (0: in the middle of the download).
const (
	crashStepEnv = "CLIENT_TEST_CRASH_STEP"
	crashExeEnv  = "CLIENT_TEST_CRASH_EXE"
	crashRelsEnv = "CLIENT_TEST_CRASH_RELS"
	crashKeyEnv  = "CLIENT_TEST_CRASH_KEY"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashStepEnv) != "" {
		os.Exit(crashChild())
	}
	if os.Getenv(trialExeEnv) != "" {
		os.Exit(trialChild())
	}
	os.Exit(m.Run())
}

func crashChild() int {
	step, err := strconv.Atoi(os.Getenv(crashStepEnv))
	if err != nil {
		return 10
	}
	cfg, err := childConfig(os.Getenv(crashExeEnv), os.Getenv(crashKeyEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 11
	}
	kill := func() {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute)
	}
	cfg.Sources = []Source{DirSource(os.Getenv(crashRelsEnv))}
	cfg.OnEvent = func(e Event) {
		if step == 0 && e.Kind == EventProgress && e.Done > e.Total/2 && e.Done < e.Total {
			kill()
		}
	}
	cfg.step = func(s selfreplace.Step) error {
		if int(s) == step {
			kill()
		}
		return nil
	}
	u, err := spawn(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 12
	}
	time.Sleep(20 * time.Second)
	u.Close()
	fmt.Fprintln(os.Stderr, "crash child: did not crash")
	return 13
}

// childConfig is the Config of the engine in a child process of these
// tests: the program at exe, which runs as if it were that file, with key,
// polling only when asked, without network or self-test, logging to
// stderr.
func childConfig(exe, key string) (options, error) {
	s, err := region.ScanFile(context.Background(), exe)
	if err != nil {
		return options{}, err
	}
	running, _ := s.Info()
	return options{
		Config: Config{
			PublicKey:  key,
			Mode:       OnRestart(),
			Interval:   time.Hour,
			Network:    NetworkConfig{Disabled: true},
			Logger:     slog.New(slog.NewTextHandler(os.Stderr, nil)),
			Executable: exe,
		},
		current:  func() (region.Info, error) { return running, nil },
		selfTest: func(context.Context, string, region.Info) error { return nil },
	}, nil
}

// TestCrashDuringApply runs the whole engine in a child process and kills it
// with SIGKILL in the middle of the download and after each file-system
// step. The executable must then be the complete old binary, or (from the
// rename on) the complete new one; and a fresh engine must then apply the
// update cleanly.
func TestCrashDuringApply(t *testing.T) {
	steps := []selfreplace.Step{0, selfreplace.StepCreated, selfreplace.StepWritten, selfreplace.StepSynced,
		selfreplace.StepBackedUp, selfreplace.StepRenamed, selfreplace.StepDirSynced}
	for _, step := range steps {
		name := "mid-download"
		if step != 0 {
			name = "after-" + step.String()
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t)
			// Big enough for several progress events.
			newPath := filepath.Join(r.rels, "prog-2.0.0")
			regiontest.WriteBinary(t, newPath, 3<<20, 2, r.key, "2.0.0")
			newData, err := os.ReadFile(newPath)
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), crashStepEnv+"="+strconv.Itoa(int(step)), crashExeEnv+"="+r.exe,
				crashRelsEnv+"="+r.rels, crashKeyEnv+"="+r.key.PublicText)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("child did not die by SIGKILL: %v\n%s", err, out)
			}
			got, err := os.ReadFile(r.exe)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case step >= selfreplace.StepRenamed && !bytes.Equal(got, newData):
				t.Fatalf("after a crash past the rename the executable is not the new binary (%d bytes)", len(got))
			case step < selfreplace.StepRenamed && !bytes.Equal(got, r.oldData):
				t.Fatalf("after a crash before the rename the executable is not the old binary (%d bytes)", len(got))
			}
			if step >= selfreplace.StepRenamed {
				return
			}
			// Recovery: stale temporary files are only removed once
			// they are an hour old, so age them, then update.
			ents, _ := os.ReadDir(filepath.Dir(r.exe))
			for _, e := range ents {
				old := time.Now().Add(-2 * time.Hour)
				os.Chtimes(filepath.Join(filepath.Dir(r.exe), e.Name()), old, old)
			}
			r.spawn(r.config())
			r.waitEvent(0, EventApplied, nil)
			if got, _ := os.ReadFile(r.exe); !bytes.Equal(got, newData) {
				t.Fatal("the update after the crash did not install the new binary")
			}
			r.noLeftovers(true)
		})
	}
}
