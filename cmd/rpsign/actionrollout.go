package main

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/sethvargo/go-githubactions"

	"github.com/org/rustpatcher-go/internal/ghrelease"
	"github.com/org/rustpatcher-go/internal/rollout"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// The values of the Action's rollout input.
const (
	rolloutPublish = "publish" // put the signed version on the channel
	rolloutHalt    = "halt"
	rolloutResume  = "resume"
	rolloutRefresh = "refresh"
	rolloutYank    = "yank"
)

// rolloutInput reads the rollout input: empty, or one of the values above.
func rolloutInput(a *githubactions.Action) (string, error) {
	switch v := strings.ToLower(strings.TrimSpace(a.GetInput("rollout"))); v {
	case "", rolloutPublish, rolloutHalt, rolloutResume, rolloutRefresh, rolloutYank:
		return v, nil
	default:
		return "", fmt.Errorf(`input "rollout" is %q; want publish, halt, resume, refresh or yank (or nothing)`, v)
	}
}

// actionClient returns the GitHub client and repository of the Action's
// inputs.
func actionClient(a *githubactions.Action, e *env, token string) (*github.Client, ghrelease.Repo, error) {
	repoStr := cmp.Or(strings.TrimSpace(a.GetInput("repository")), e.getenv("GITHUB_REPOSITORY"))
	repo, err := ghrelease.ParseRepo(repoStr)
	if err != nil {
		return nil, repo, fmt.Errorf(`input "repository": %w`, err)
	}
	c, err := ghrelease.NewClient(ghrelease.ClientConfig{
		Token:  token,
		APIURL: cmp.Or(strings.TrimSpace(a.GetInput("api-url")), e.getenv("GITHUB_API_URL")),
	})
	return c, repo, err
}

// rolloutChangeInput reads the change the rollout inputs ask for; version
// is the version signed, for publish.
func rolloutChangeInput(a *githubactions.Action, op, version string) (rolloutChange, time.Duration, error) {
	c := rolloutChange{channel: cmp.Or(strings.TrimSpace(a.GetInput("rollout-channel")), rollout.DefaultChannel)}
	if err := rollout.CheckChannel(c.channel); err != nil {
		return c, 0, fmt.Errorf(`input "rollout-channel": %w`, err)
	}
	life, err := parseDays(cmp.Or(strings.TrimSpace(a.GetInput("rollout-expires")), "7d"))
	if err != nil || life < time.Minute {
		return c, 0, fmt.Errorf(`input "rollout-expires" is %q: want a duration of a minute or more, such as 168h or 7d`, a.GetInput("rollout-expires"))
	}
	switch op {
	case rolloutPublish:
		c.version = version
		c.percent = 100
		if p := strings.TrimSpace(a.GetInput("rollout-percent")); p != "" {
			n, err := strconv.Atoi(strings.TrimSuffix(p, "%"))
			if err != nil || n < 0 || n > 100 {
				return c, 0, fmt.Errorf(`input "rollout-percent" is %q: want 0 to 100`, p)
			}
			c.percent = n
		}
		if r := strings.TrimSpace(a.GetInput("rollout-ramp")); r != "" {
			if c.ramp, err = parseDays(r); err != nil || c.ramp < time.Second {
				return c, 0, fmt.Errorf(`input "rollout-ramp" is %q: want a duration such as 48h or 3d`, r)
			}
		}
	case rolloutHalt:
		c.halt = true
	case rolloutResume:
		c.resume = true
	case rolloutRefresh:
		c.refresh = true
	case rolloutYank:
		for _, in := range []struct {
			name string
			v    *string
		}{{"rollout-yank", &c.yank}, {"rollout-to", &c.to}} {
			s := strings.TrimSpace(a.GetInput(in.name))
			if s == "" {
				return c, 0, fmt.Errorf(`rollout: yank needs the inputs "rollout-yank" (the version to take back) and "rollout-to" (where its nodes go)`)
			}
			v, err := region.ParseVersion(s)
			if err != nil {
				return c, 0, fmt.Errorf(`input %q is %q, not a version: %w`, in.name, s, err)
			}
			*in.v = v
		}
	}
	return c, life, nil
}

// actionRollout writes the next rollout statement of each target with key,
// building on the newest one attached to the repository's releases, and
// attaches it to the release of tag (empty: the newest release, whose
// assets seeds read) and, when that is another one, to the latest release
// too (the newest that is not a pre-release), whose assets the github: form
// of HTTPS sources reads through releases/latest. It returns the
// statements written.
func actionRollout(ctx context.Context, a *githubactions.Action, e *env, key ed25519.PrivateKey, token, tag string, targets []target.Target, c rolloutChange, life time.Duration) ([]rollout.Statement, error) {
	if token == "" {
		return nil, fmt.Errorf(`input "rollout" needs the "token" input (contents:write): the statement is read from and attached to the releases`)
	}
	gc, repo, err := actionClient(a, e, token)
	if err != nil {
		return nil, err
	}
	pub := &ghrelease.Publisher{Client: gc, Repo: repo}
	latest, err := ghrelease.LatestTag(ctx, gc, repo)
	if err != nil {
		return nil, err
	}
	var out []rollout.Statement
	for _, t := range targets {
		prev, newest, err := ghrelease.FindRollout(ctx, gc, repo, t)
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp("", "rpsign-rollout-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if prev != nil {
			text, _ := prev.MarshalText()
			if err := os.WriteFile(filepath.Join(dir, rollout.FileName(t.String())), text, 0o644); err != nil {
				return nil, err
			}
			a.Infof("the rollout statement of %s so far: sequence %d", t, prev.Sequence)
		}
		to := cmp.Or(tag, newest)
		if to == "" || prev == nil && !c.publishes() {
			return nil, fmt.Errorf("rollout: %s: no release of %s holds a rollout statement of %s yet: publish one first (rollout: publish, with a release)", describeOp(c), repo, t)
		}
		st, err := writeRollout(e, key, `input "key"`, t, dir, c, time.Now(), life)
		if err != nil {
			return nil, fmt.Errorf("rollout statement of %s: %w", t, err)
		}
		for _, rel := range slices.Compact([]string{to, cmp.Or(latest, to)}) {
			if err := pub.PublishRollouts(ctx, rel, []string{filepath.Join(dir, rollout.FileName(t.String()))}); err != nil {
				return nil, err
			}
			a.Infof("attached the rollout statement of %s, sequence %d, to release %s", t, st.Sequence, rel)
		}
		out = append(out, st)
	}
	return out, nil
}

// rolloutOutput is one statement written, in the Action's rollout output.
type rolloutOutput struct {
	Target   string    `json:"target"`
	Sequence uint64    `json:"sequence"`
	Expires  time.Time `json:"expires"`
	File     string    `json:"asset"`
}

// setRolloutOutputs sets the rollout output and adds the statements to the
// step summary.
func setRolloutOutputs(a *githubactions.Action, e *env, sts []rollout.Statement) error {
	var outs []rolloutOutput
	var b strings.Builder
	b.WriteString("### rpsign: rollout statements\n\n| Target | Sequence | Expires | Channels | Yanked |\n| --- | ---: | --- | --- | --- |\n")
	for _, st := range sts {
		outs = append(outs, rolloutOutput{Target: st.Target, Sequence: st.Sequence, Expires: st.Expires, File: rollout.FileName(st.Target)})
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s |\n", st.Target, st.Sequence, st.Expires.Format(time.RFC3339), mdEscape(st.ChannelSummary()), mdEscape(st.YankSummary()))
	}
	js, err := json.Marshal(outs)
	if err != nil {
		return err
	}
	a.SetOutput("rollout", string(js))
	if e.getenv("GITHUB_STEP_SUMMARY") != "" {
		a.AddStepSummary(b.String())
	}
	return nil
}

// describeOp names the change, for messages.
func describeOp(c rolloutChange) string {
	switch {
	case c.halt:
		return "halt"
	case c.resume:
		return "resume"
	case c.refresh:
		return "refresh"
	case c.yank != "":
		return "yank"
	}
	return "change"
}

// actionRolloutOnly changes the rollout statement of the target input as
// op says (halt, resume, refresh, yank), signing no file.
func actionRolloutOnly(ctx context.Context, a *githubactions.Action, e *env, key ed25519.PrivateKey, token, op string) error {
	ts := strings.TrimSpace(a.GetInput("target"))
	if ts == "" {
		return fmt.Errorf(`rollout: %s needs the "target" input (GOOS/GOARCH, such as linux/amd64): the statement of which target to change`, op)
	}
	t, err := target.Parse(ts)
	if err != nil {
		return fmt.Errorf(`input "target": %w`, err)
	}
	c, life, err := rolloutChangeInput(a, op, "")
	if err != nil {
		return err
	}
	sts, err := actionRollout(ctx, a, e, key, token, strings.TrimSpace(a.GetInput("tag")), []target.Target{t}, c, life)
	if err != nil {
		return err
	}
	a.SetOutput("public-key", region.EncodePublicKey(key.Public().(ed25519.PublicKey)))
	return setRolloutOutputs(a, e, sts)
}
