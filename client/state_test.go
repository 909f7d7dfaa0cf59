package client

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/org/rustpatcher-go/internal/regiontest"
	"github.com/org/rustpatcher-go/internal/selfreplace"
	"github.com/org/rustpatcher-go/region"
)

// onTrial makes the rig's program an update on trial: the executable is
// 2.0.0 (returned, with its file ID), the rig's 1.0.0 is <exe>.old, and the
// state says 2.0.0 has started starts times without becoming healthy.
func (r *rig) onTrial(starts int) (region.Info, [32]byte) {
	r.t.Helper()
	if err := os.WriteFile(r.exe+selfreplace.BackupSuffix, r.oldData, 0o755); err != nil {
		r.t.Fatal(err)
	}
	in := regiontest.WriteBinary(r.t, r.exe, 200_000, 7, r.key, "2.0.0")
	s, err := region.ScanFile(context.Background(), r.exe)
	if err != nil {
		r.t.Fatal(err)
	}
	r.running = in
	var t savedState
	t.begin(s.FileID, "2.0.0", "1.0.0")
	t.Starts = starts
	if err := t.save(r.exe); err != nil {
		r.t.Fatal(err)
	}
	return in, s.FileID
}

func TestRollback(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		_, id := r.onTrial(defaultMaxUnhealthyStarts)
		r.spawn(r.config())
		e, _ := r.waitEvent(0, EventRolledBack, nil)
		if !errors.Is(e.Err, ErrRolledBack) || e.Release.Version != "2.0.0" || e.FileID != id {
			t.Errorf("rolled-back event = %+v", e)
		}
		if got, _ := os.ReadFile(r.exe); !bytes.Equal(got, r.oldData) {
			t.Error("the executable is not the previous binary")
		}
		r.mu.Lock()
		restarts := len(r.restarts)
		r.mu.Unlock()
		if restarts != 1 {
			t.Errorf("%d restarts, want one into the previous binary", restarts)
		}
		st, err := loadState(r.exe)
		if err != nil || st.New != "" || len(st.rolledBack()) != 1 || st.rolledBack()[0] != id {
			t.Errorf("state after the rollback = %+v, %v", st, err)
		}
	})
}

func TestRollbackCountsStarts(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		r.onTrial(0)
		cfg := r.config()
		u := r.spawn(cfg)
		r.waitEvent(0, EventVerified, nil)
		// Counted as it starts, so that a crash or a kill leaves it counted...
		st, err := loadState(r.exe)
		if err != nil || st.Starts != 1 || st.New == "" {
			t.Errorf("state during the first start = %+v, %v", st, err)
		}
		// ...and taken back by a clean stop.
		u.Close()
		st, err = loadState(r.exe)
		if err != nil || st.Starts != 0 || st.New == "" {
			t.Errorf("state after the first start stopped by Close = %+v, %v", st, err)
		}
		if n := r.countEvents(EventRolledBack); n != 0 {
			t.Error("rolled back at the first start")
		}
	})
}

func TestTrialHealthy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		after time.Duration // HealthyAfter
		at    time.Duration // when the update must be healthy
		call  bool          // the program calls Healthy then
	}{
		{"after HealthyAfter", time.Minute, time.Minute, false},
		{"the program says so", time.Hour, 10 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t)
				r.onTrial(1)
				cfg := r.config()
				cfg.HealthyAfter = tt.after
				start := time.Now()
				u := r.spawn(cfg)
				time.Sleep(tt.at - time.Second)
				synctest.Wait()
				if n := r.countEvents(EventHealthy); n != 0 {
					t.Fatalf("healthy after %v, want %v", time.Since(start), tt.at)
				}
				if st, err := loadState(r.exe); err != nil || st.New == "" {
					t.Errorf("state before becoming healthy = %+v, %v; want the update on trial", st, err)
				}
				time.Sleep(time.Second)
				if tt.call {
					u.Healthy()
				}
				synctest.Wait()
				if n := r.countEvents(EventHealthy); n != 1 {
					t.Fatalf("%d healthy events after %v, want 1", n, time.Since(start))
				}
				st, err := loadState(r.exe)
				if err != nil || st.New != "" {
					t.Errorf("state after becoming healthy = %+v, %v", st, err)
				}
			})
		})
	}
}

// rolledBackRelease offers a release 2.0.0 and saves the state st with it
// rolled back here; it returns the release's path.
func (r *rig) rolledBackRelease(st savedState) string {
	r.t.Helper()
	bad := r.release("bad", 8, r.key, "2.0.0")
	s, err := region.ScanFile(context.Background(), bad)
	if err != nil {
		r.t.Fatal(err)
	}
	st.RolledBack = []string{hexID(s.FileID)}
	if err := st.save(r.exe); err != nil {
		r.t.Fatal(err)
	}
	return bad
}

// TestRolledBackNotApplied checks that a release rolled back here is not
// applied again, though offered, while a newer one is.
func TestRolledBackNotApplied(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		bad := r.rolledBackRelease(savedState{})
		u := r.spawn(r.config())
		r.waitEvent(0, EventVerified, nil)
		r.release("good", 9, r.key, "2.0.1")
		u.Check()
		e, _ := r.waitEvent(0, EventApplied, nil)
		if e.Release.Version != "2.0.1" {
			t.Errorf("applied %s, want 2.0.1", e.Release.Version)
		}
		for _, ev := range r.eventList() {
			if ev == "found 2.0.0 from "+bad {
				t.Errorf("the rolled-back release was fetched again: %v", r.eventList())
			}
		}
	})
}

// TestForgetRolledBack checks that a file rolled back is applied again once
// ForgetRolledBack cleared the record, and that the rest of the state stays.
func TestForgetRolledBack(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		r.rolledBackRelease(savedState{Rotations: []string{"kept"}})
		if err := ForgetRolledBack(r.exe); err != nil {
			t.Fatal(err)
		}
		if st, err := loadState(r.exe); err != nil || len(st.RolledBack) != 0 || len(st.Rotations) != 1 {
			t.Fatalf("state after ForgetRolledBack = %+v, %v", st, err)
		}
		r.spawn(r.config())
		e, _ := r.waitEvent(0, EventApplied, nil)
		if e.Release.Version != "2.0.0" {
			t.Errorf("applied %s, want the file rolled back before, 2.0.0", e.Release.Version)
		}
	})
}

// TestRollbackMessageSaysHow checks that the rollback says how to give the
// file another chance.
func TestRollbackMessageSaysHow(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		r.onTrial(defaultMaxUnhealthyStarts)
		r.spawn(r.config())
		e, _ := r.waitEvent(0, EventRolledBack, nil)
		for _, want := range []string{"client.ForgetRolledBack", "a newer release is applied", "Updater.Close"} {
			if !strings.Contains(e.Err.Error(), want) {
				t.Errorf("rollback error %q does not say %q", e.Err, want)
			}
		}
	})
}

// TestHealthyKeepsNewerTrial checks that an update on trial that applies a
// newer one (to run at the next start) and then becomes healthy leaves the
// newer one on trial.
func TestHealthyKeepsNewerTrial(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t)
		r.onTrial(1)
		r.release("p", 3, r.key, "3.0.0")
		u := r.spawn(r.config())
		r.waitEvent(0, EventApplied, nil)
		u.Healthy()
		r.waitEvent(0, EventHealthy, nil)
		u.Close()
		st, err := loadState(r.exe)
		if err != nil || st.Version != "3.0.0" || st.New == "" || st.Starts != 0 {
			t.Errorf("state after 2.0.0 became healthy with 3.0.0 applied = %+v, %v; want 3.0.0 on trial", st, err)
		}
	})
}
