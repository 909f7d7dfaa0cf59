//go:build unix

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/org/rustpatcher-go/internal/rollout"
)

// TestHTTPSRollout: the owner's rollout statement travels over HTTPS as
// the releases do. hello 1.0.0 updates to 2.0.0 from an HTTPS mirror;
// then the owner yanks 2.0.0 to 1.0.0 as docs/RELEASING.md says:
// rpsign rollout writes the statement into the owner's directory, and
// rpsign publish --out lays 1.0.0 and the statement out in the mirror,
// the manifest naming the statement. The node takes the statement from
// the mirror and moves down to 1.0.0: the signed downgrade.
func TestHTTPSRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: TestHTTPSMirror is the HTTPS update of -short")
	}
	t.Parallel()
	m := newMirrorSetup(t)
	p := m.start(t, m.url("127.0.0.1"))
	m.waitUpdated(t, p, 0)
	from := len(p.Lines())

	rpsign := GoBuild(t, rpsignPkg, "")
	keyFile := filepath.Join(t.TempDir(), "owner.key")
	if err := os.WriteFile(keyFile, []byte(m.key.Secret), 0o600); err != nil {
		t.Fatal(err)
	}
	back := m.release(t, m.key, "1.0.0") // into the owner's release directory
	rpsignRollout(t, rpsign, keyFile, m.rels, "--yank", "2.0.0", "--to", "1.0.0")
	stmt := filepath.Join(m.rels, rollout.FileName(runtime.GOOS+"/"+runtime.GOARCH))
	if out, err := exec.Command(rpsign, "publish", "--out", m.mirror, back, stmt, "--pub", m.key.Public).CombinedOutput(); err != nil {
		t.Fatalf("rpsign publish --out: %v\n%s", err, out)
	}
	man, err := os.ReadFile(filepath.Join(m.mirror, "rustpatcher-"+runtime.GOOS+"-"+runtime.GOARCH+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(man), `"`+filepath.Base(stmt)+`"`) {
		t.Errorf("the manifest does not name the statement %s:\n%s", filepath.Base(stmt), man)
	}

	p.WaitLine(from, 30*time.Second, `msg="rollout statement taken".* sequence=1 .*statement="yank 2\.0\.0->1\.0\.0"`)
	p.WaitLine(from, 60*time.Second, `^hello 1\.0\.0 args=a b$`)
	m.waitFileVersion(t, "1.0.0", 5*time.Second)
	p.Stop(10 * time.Second)
}
