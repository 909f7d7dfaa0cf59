package main

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/org/rustpatcher-go/internal/ghrelease"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

const publishUsage = "publish BINARY... --repo OWNER/REPO --tag TAG --pub [TARGET=]KEY... [--target OS/ARCH] [--token-env VAR] [--api-url URL]"

// pubKeys is the --pub flag: a public key for all targets, or one per
// target as TARGET=KEY, repeatable.
type pubKeys struct {
	all       ed25519.PublicKey
	perTarget map[target.Target]ed25519.PublicKey
}

func (p *pubKeys) String() string { return "" }

func (p *pubKeys) Set(s string) error {
	ts, ks, ok := strings.Cut(s, "=")
	if !ok {
		k, err := region.ParsePublicKey(s)
		if err != nil {
			return err
		}
		p.all = k
		return nil
	}
	t, err := target.Parse(ts)
	if err != nil {
		return err
	}
	k, err := region.ParsePublicKey(ks)
	if err != nil {
		return fmt.Errorf("key for %s: %w", t, err)
	}
	if p.perTarget == nil {
		p.perTarget = make(map[target.Target]ed25519.PublicKey)
	}
	p.perTarget[t] = k
	return nil
}

func (p *pubKeys) key(t target.Target) (ed25519.PublicKey, bool) {
	if k, ok := p.perTarget[t]; ok {
		return k, true
	}
	return p.all, p.all != nil
}

// runPublish attaches signed binaries and their per-target manifests to a
// GitHub release. Each binary must verify with its target's public key
// first: rpsign never publishes what a client would reject.
func runPublish(e *env, args []string) error {
	flags := flag.NewFlagSet("publish", flag.ContinueOnError)
	repoStr := flags.String("repo", "", "GitHub repository `OWNER/REPO` (default: $GITHUB_REPOSITORY)")
	tag := flags.String("tag", "", "release `TAG` to attach to; created if missing (default: $GITHUB_REF_NAME)")
	var pubs pubKeys
	flags.Var(&pubs, "pub", "owner public `KEY`, or TARGET=KEY per target (repeatable)")
	targetStr := flags.String("target", "", "`OS/ARCH` of the binaries (default: read from each binary's headers)")
	tokenEnv := flags.String("token-env", "GITHUB_TOKEN", "environment `VAR` holding the GitHub token")
	apiURL := flags.String("api-url", "", "GitHub API base `URL` (default: $GITHUB_API_URL or https://api.github.com)")
	bins, err := parseAny(flags, args)
	if err != nil {
		return err
	}
	if len(bins) == 0 {
		return fmt.Errorf("%w: no binaries given", errUsage)
	}
	repo, err := ghrelease.ParseRepo(cmp.Or(*repoStr, e.getenv("GITHUB_REPOSITORY")))
	if err != nil {
		return fmt.Errorf("%w: --repo: %v", errUsage, err)
	}
	if *tag == "" && e.getenv("GITHUB_REF_TYPE") == "tag" {
		*tag = e.getenv("GITHUB_REF_NAME")
	}
	if *tag == "" {
		return fmt.Errorf("%w: --tag is required", errUsage)
	}
	if pubs.all == nil && pubs.perTarget == nil {
		return fmt.Errorf("%w: --pub is required (print it with: rpsign pub --key-file PATH)", errUsage)
	}
	token := e.getenv(*tokenEnv)
	if token == "" {
		return fmt.Errorf("environment variable %s is empty or unset; it should hold a GitHub token with contents:write", *tokenEnv)
	}
	var fixed *target.Target
	if *targetStr != "" {
		t, err := target.Parse(*targetStr)
		if err != nil {
			return fmt.Errorf("%w: --target: %v", errUsage, err)
		}
		fixed = &t
	}
	files, err := verifyForPublish(bins, fixed, &pubs)
	if err != nil {
		return err
	}
	c, err := ghrelease.NewClient(ghrelease.ClientConfig{Token: token, APIURL: cmp.Or(*apiURL, e.getenv("GITHUB_API_URL"))})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	p := &ghrelease.Publisher{Client: c, Repo: repo, Log: slog.New(slog.NewTextHandler(e.stderr, nil))}
	if isTerminal(e.stderr) && e.getenv("CI") == "" {
		// On a terminal only: a CI log would keep every update.
		p.Progress = newProgressLine(e.stderr).update
	}
	rel, err := p.Publish(ctx, *tag, files)
	if err != nil {
		return err
	}
	for _, f := range files {
		fmt.Fprintf(e.stdout, "published %s as %s (%s %s) and %s\n", f.Path, f.Name, f.Target, f.Info.Version, ghrelease.ManifestName(f.Target))
	}
	if u := rel.GetHTMLURL(); u != "" {
		fmt.Fprintln(e.stdout, u)
	}
	return nil
}

// verifyForPublish checks each binary with its target's key and returns
// what to publish.
func verifyForPublish(bins []string, fixed *target.Target, pubs *pubKeys) ([]ghrelease.Signed, error) {
	var files []ghrelease.Signed
	for _, b := range bins {
		given := ""
		if fixed != nil {
			given = fixed.String()
		}
		t, err := binaryTarget(b, given, "--target", region.V1)
		if err != nil {
			return nil, err
		}
		pub, ok := pubs.key(t)
		if !ok {
			return nil, fmt.Errorf("%s is a %s binary, but --pub gives no key for %s", b, t, t)
		}
		in, err := region.VerifyFile(context.Background(), b, pub)
		if err != nil {
			return nil, fmt.Errorf("not publishing: %w", err)
		}
		if in.Format == region.V1 && in.Target != t.String() {
			return nil, fmt.Errorf("not publishing %s as %s: it is signed for %s", b, t, in.Target)
		}
		files = append(files, ghrelease.Signed{Path: b, Name: assetName(b, t), Target: t, Info: in, PublicKey: pub})
	}
	return files, nil
}
