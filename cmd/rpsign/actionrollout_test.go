package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/ghrelease/ghreleasetest"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/target"
)

// TestActionRollout runs the Action's rollout inputs against ghreleasetest,
// a local server speaking GitHub's REST shapes (GitHub cannot be reached
// from tests): a release published with a 25% rollout, then halted,
// resumed, re-signed and yanked by runs that sign nothing, each building on
// the statement on the releases with the next sequence.
func TestActionRollout(t *testing.T) {
	srv := ghreleasetest.NewServer(t)
	key, pub := testKey(t)
	dir := t.TempDir()
	host := target.Current()
	base := map[string]string{
		"INPUT_KEY":         key,
		"INPUT_TOKEN":       "secret-token",
		"INPUT_API-URL":     srv.URL,
		"GITHUB_REPOSITORY": "org/app",
	}
	with := func(more map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range more {
			m[k] = v
		}
		return m
	}
	// statement returns the statement on release tag.
	statement := func(tag string) rollout.Statement {
		t.Helper()
		b, ok := srv.Assets("org/app", tag)[rollout.FileName(host.String())]
		if !ok {
			t.Fatalf("release %s has no rollout statement", tag)
		}
		st, err := rollout.Parse(b)
		if err != nil || st.Verify() != nil || !st.Key.Equal(pub) {
			t.Fatalf("the statement on %s: %v", tag, err)
		}
		return st
	}
	run := func(vars map[string]string) *actionRun {
		t.Helper()
		r := newActionRun(t, vars)
		if err := r.run(); err != nil {
			t.Fatalf("action: %v\n%s", err, &r.stdout)
		}
		return r
	}

	r := run(with(map[string]string{
		"INPUT_FILES": copyHello(t, dir, "hello"), "INPUT_TARGET": host.String(), "GITHUB_REF": "refs/tags/v2.0.0",
		"INPUT_ROLLOUT": "publish", "INPUT_ROLLOUT-PERCENT": "25", "INPUT_ROLLOUT-CHANNEL": "stable",
	}))
	st := statement("v2.0.0")
	if c, ok := st.Channel("stable"); !ok || st.Sequence != 1 || c.Version != "2.0.0" || c.Percent != 25 || c.Halted {
		t.Errorf("published statement: %+v", st)
	}
	var outs []rolloutOutput
	if err := json.Unmarshal([]byte(r.outputs(t)["rollout"]), &outs); err != nil || len(outs) != 1 || outs[0].Sequence != 1 || outs[0].Target != host.String() {
		t.Errorf("rollout output %q: %v", r.outputs(t)["rollout"], err)
	}

	for _, step := range []struct {
		vars  map[string]string
		check func(rollout.Statement) bool
	}{
		{map[string]string{"INPUT_ROLLOUT": "halt"}, func(s rollout.Statement) bool { c, _ := s.Channel("stable"); return c.Halted && c.Percent == 25 }},
		{map[string]string{"INPUT_ROLLOUT": "resume"}, func(s rollout.Statement) bool { c, _ := s.Channel("stable"); return !c.Halted && c.Percent == 25 }},
		{map[string]string{"INPUT_ROLLOUT": "refresh", "INPUT_ROLLOUT-EXPIRES": "3d"}, func(s rollout.Statement) bool { return s.Expires.Sub(s.Issued).Hours() == 72 }},
		{map[string]string{"INPUT_ROLLOUT": "yank", "INPUT_ROLLOUT-YANK": "2.0.0", "INPUT_ROLLOUT-TO": "v1.0.1"}, func(s rollout.Statement) bool {
			c, _ := s.Channel("stable")
			return s.Yanked("2.0.0") && c.Version == "1.0.1"
		}},
	} {
		prev := statement("v2.0.0")
		step.vars["INPUT_TARGET"] = host.String()
		run(with(step.vars))
		st := statement("v2.0.0")
		if st.Sequence != prev.Sequence+1 || !step.check(st) {
			t.Errorf("rollout %s: statement %+v after sequence %d", step.vars["INPUT_ROLLOUT"], st, prev.Sequence)
		}
	}

	for _, tc := range []struct {
		name string
		vars map[string]string
		want string
	}{
		{"another key", map[string]string{"INPUT_ROLLOUT": "halt", "INPUT_TARGET": host.String(), "INPUT_KEY": func() string { k, _ := randomKey(t); return k }()},
			"is signed by " + vectorPublicKey + ", not by the input \"key\""},
		{"no target", map[string]string{"INPUT_ROLLOUT": "halt"}, `needs the "target" input`},
		{"no statement yet", map[string]string{"INPUT_ROLLOUT": "halt", "INPUT_TARGET": "windows/arm64"}, "no release of org/app holds a rollout statement of windows/arm64 yet"},
		{"yank without to", map[string]string{"INPUT_ROLLOUT": "yank", "INPUT_TARGET": host.String(), "INPUT_ROLLOUT-YANK": "1.0.1"}, `needs the inputs "rollout-yank"`},
		{"yank to no version", map[string]string{"INPUT_ROLLOUT": "yank", "INPUT_TARGET": host.String(), "INPUT_ROLLOUT-YANK": "1.0.1", "INPUT_ROLLOUT-TO": "latest"}, `input "rollout-to" is "latest", not a version`},
		{"unknown", map[string]string{"INPUT_ROLLOUT": "pause"}, `input "rollout" is "pause"`},
		{"no token", map[string]string{"INPUT_ROLLOUT": "halt", "INPUT_TARGET": host.String(), "INPUT_TOKEN": ""}, `needs the "token" input`},
	} {
		r := newActionRun(t, with(tc.vars))
		err := r.run()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
		if !bytes.Contains(r.stdout.Bytes(), []byte("::error")) {
			t.Errorf("%s: no error annotation:\n%s", tc.name, &r.stdout)
		}
	}
	if st := statement("v2.0.0"); st.Sequence != 5 {
		t.Errorf("after the refused runs, the statement has sequence %d, want 5 still", st.Sequence)
	}

	// A newer release without a statement: the next one goes there, where
	// seeds that read the newest releases find it.
	srv.AddRelease("org/app", "v2.0.1")
	run(with(map[string]string{"INPUT_ROLLOUT": "refresh", "INPUT_TARGET": host.String()}))
	if st := statement("v2.0.1"); st.Sequence != 6 || !st.Yanked("2.0.0") {
		t.Errorf("the refreshed statement on the newest release: %+v", st)
	}

	// A newer pre-release: the next statement goes there for the seeds,
	// and to the latest release (v2.0.1), which releases/latest links and
	// so the github: form of HTTPS sources reads.
	srv.AddRelease("org/app", "v2.1.0-beta.1")
	srv.MarkPrerelease("org/app", "v2.1.0-beta.1")
	run(with(map[string]string{"INPUT_ROLLOUT": "refresh", "INPUT_TARGET": host.String()}))
	for _, tag := range []string{"v2.1.0-beta.1", "v2.0.1"} {
		if st := statement(tag); st.Sequence != 7 {
			t.Errorf("the statement on %s has sequence %d, want 7", tag, st.Sequence)
		}
	}
}
