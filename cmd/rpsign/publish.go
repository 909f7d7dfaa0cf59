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
	"path/filepath"
	"strings"

	"github.com/org/rustpatcher-go/internal/ghrelease"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

const publishUsage = "publish FILE... --pub [TARGET=]KEY... (--repo OWNER/REPO --tag TAG [--token-env VAR] [--api-url URL] | --out DIR) [--target OS/ARCH] [--compress] [--delta-from OLDFILE...]"

// pathList is a repeatable flag of file paths.
type pathList []string

func (p *pathList) String() string { return strings.Join(*p, ",") }

func (p *pathList) Set(s string) error {
	*p = append(*p, s)
	return nil
}

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

// runPublish attaches signed binaries, their piece hashes and per-target
// manifests, and the statements given with them, to a GitHub release, or
// with --out lays them out the same way in a directory, for a static
// mirror. Each binary must verify with its target's public key first, and
// each statement with its own signature: rpsign never publishes what a
// client would reject.
func runPublish(e *env, args []string) error {
	flags := flag.NewFlagSet("publish", flag.ContinueOnError)
	repoStr := flags.String("repo", "", "GitHub repository `OWNER/REPO` (default: $GITHUB_REPOSITORY)")
	tag := flags.String("tag", "", "release `TAG` to attach to; created if missing (default: $GITHUB_REF_NAME)")
	var pubs pubKeys
	flags.Var(&pubs, "pub", "owner public `KEY`, or TARGET=KEY per target (repeatable)")
	targetStr := flags.String("target", "", "`OS/ARCH` of the binaries (default: read from each binary's headers)")
	tokenEnv := flags.String("token-env", "GITHUB_TOKEN", "environment `VAR` holding the GitHub token")
	apiURL := flags.String("api-url", "", "GitHub API base `URL` (default: $GITHUB_API_URL or https://api.github.com)")
	out := flags.String("out", "", "lay the release out in directory `DIR` (created if missing) for a static mirror, instead of publishing to GitHub")
	compress := flags.Bool("compress", false, "also publish each binary's pieces compressed (<asset>.zst), for apps that read the release over HTTPS")
	var bases pathList
	flags.Var(&bases, "delta-from", "also publish each binary's pieces as a delta from the older signed binary `OLDFILE` of its target (<asset>.<id>.delta), for apps over HTTPS that run it (repeatable)")
	paths, err := parseAny(flags, args)
	if err != nil {
		return err
	}
	var bins, stmts []string
	for _, p := range paths {
		if ghrelease.IsStatement(p) {
			stmts = append(stmts, p)
		} else {
			bins = append(bins, p)
		}
	}
	if len(bins) == 0 {
		return fmt.Errorf("%w: no binaries given", errUsage)
	}
	if pubs.all == nil && pubs.perTarget == nil {
		return fmt.Errorf("%w: --pub is required (print it with: rpsign pub --key-file PATH)", errUsage)
	}
	var fixed *target.Target
	if *targetStr != "" {
		t, err := target.Parse(*targetStr)
		if err != nil {
			return fmt.Errorf("%w: --target: %v", errUsage, err)
		}
		fixed = &t
	}
	if *out != "" {
		if *repoStr != "" || *tag != "" {
			return fmt.Errorf("%w: --out writes a directory; --repo and --tag publish to GitHub: give one or the other", errUsage)
		}
		files, err := verifyForPublish(bins, fixed, &pubs)
		if err != nil {
			return err
		}
		return publishDir(e, *out, files, stmts, packsOf(*compress, bases))
	}
	repo, err := ghrelease.ParseRepo(cmp.Or(*repoStr, e.getenv("GITHUB_REPOSITORY")))
	if err != nil {
		return fmt.Errorf("%w: --repo: %v (or --out DIR for a static mirror)", errUsage, err)
	}
	if *tag == "" && e.getenv("GITHUB_REF_TYPE") == "tag" {
		*tag = e.getenv("GITHUB_REF_NAME")
	}
	if *tag == "" {
		return fmt.Errorf("%w: --tag is required", errUsage)
	}
	token := e.getenv(*tokenEnv)
	if token == "" {
		return fmt.Errorf("environment variable %s is empty or unset; it should hold a GitHub token with contents:write", *tokenEnv)
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
	p := &ghrelease.Publisher{Client: c, Repo: repo, Log: slog.New(slog.NewTextHandler(e.stderr, nil)), Statements: stmts,
		Packs: packsOf(*compress, bases)}
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
	for _, st := range stmts {
		fmt.Fprintf(e.stdout, "published %s\n", st)
	}
	if u := rel.GetHTMLURL(); u != "" {
		fmt.Fprintln(e.stdout, u)
	}
	return nil
}

// publishDir lays the release out in dir, as GitHub would hold it, and
// prints each file written.
func publishDir(e *env, dir string, files []ghrelease.Signed, stmts []string, packs *ghrelease.Packs) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if packs != nil {
		tmp, err := os.MkdirTemp("", "rpsign-packs-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		packs.Dir = tmp
	}
	assets, err := ghrelease.Layout(ctx, files, stmts, packs)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if err := ghrelease.WriteDir(dir, assets); err != nil {
		return err
	}
	for _, a := range assets {
		fmt.Fprintf(e.stdout, "wrote %s\n", filepath.Join(dir, a.Name))
	}
	return nil
}

// packsOf returns the packs --compress and --delta-from ask for, or nil.
func packsOf(compress bool, bases []string) *ghrelease.Packs {
	if !compress && len(bases) == 0 {
		return nil
	}
	return &ghrelease.Packs{Compress: compress, Bases: bases}
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
