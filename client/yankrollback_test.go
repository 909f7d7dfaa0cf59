package client

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/rollout"
)

// TestNoRollbackToYanked: an update on trial that never becomes healthy
// is not rolled back when the version before it is yanked by the
// statement the node holds (a yank moved the node to it): the yanked
// version is not put back, the update stays, its trial ends, and the
// failure is reported. (TestRollback: without the yank it is rolled
// back.)
func TestNoRollbackToYanked(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.onTrial(defaultMaxUnhealthyStarts) // 2.0.0, replacing 1.0.0
	st := rollout.Statement{Target: runningTarget, Sequence: 3, Issued: time.Now().Add(-time.Hour), Expires: time.Now().Add(time.Hour),
		Yanks: []rollout.Yank{{Version: "1.0.0", To: "2.0.0"}}}
	if err := st.Sign(r.key.Private); err != nil {
		t.Fatal(err)
	}
	tr, err := loadState(r.exe)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := st.MarshalText()
	tr.Rollout = string(b)
	if err := tr.save(r.exe); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(r.exe)

	r.spawn(r.config())
	e, _ := r.waitEvent(0, EventFailed, nil)
	if e.Release.Version != "2.0.0" || !strings.Contains(e.Err.Error(), "1.0.0, is yanked") {
		t.Errorf("failed event = %v", e)
	}
	r.waitEvent(0, EventVerified, nil)
	if n := r.countEvents(EventRolledBack); n != 0 {
		t.Errorf("%d rollbacks", n)
	}
	if got, _ := os.ReadFile(r.exe); !bytes.Equal(got, want) {
		t.Error("the executable changed: the yanked version was put back")
	}
	r.mu.Lock()
	restarts := len(r.restarts)
	r.mu.Unlock()
	if restarts != 0 {
		t.Errorf("%d restarts, want none", restarts)
	}
	after, err := loadState(r.exe)
	if err != nil || after.New != "" || len(after.RolledBack) != 0 || after.Rollout != tr.Rollout {
		t.Errorf("state after = %+v, %v; want no trial, nothing rolled back, the statement kept", after, err)
	}
}
