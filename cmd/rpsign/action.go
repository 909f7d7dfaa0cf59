package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sethvargo/go-githubactions"

	"github.com/org/rustpatcher-go/internal/ghrelease"
	"github.com/org/rustpatcher-go/internal/target"
	"github.com/org/rustpatcher-go/region"
)

// runAction is the entrypoint of the GitHub Action (action.yml). It reads
// the action's inputs from INPUT_* variables, signs the files, optionally
// publishes them, and writes outputs and a step summary. On failure it
// writes an error annotation that names the file, then fails.
//
// Inputs (see action.yml): key, files, version, target, token, tag,
// repository, api-url.
// Outputs: files (the signed paths, one a line), signed (a JSON array of
// ghrelease.PatchInfo with "file" set), public-key, version, release-url.
func runAction(e *env, args []string) error {
	if len(args) == 1 && isHelp(args[0]) {
		return flag.ErrHelp
	}
	if len(args) != 0 {
		return fmt.Errorf("%w: rpsign action takes no arguments; it reads INPUT_* variables", errUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	a := githubactions.New(githubactions.WithGetenv(e.getenv), githubactions.WithWriter(e.stdout))
	err := action(ctx, a, e)
	if err != nil {
		var fe *fileError
		if errors.As(err, &fe) {
			a.WithFieldsMap(map[string]string{"file": fe.file, "title": "rpsign"}).Errorf("%v", err)
		} else {
			a.WithFieldsMap(map[string]string{"title": "rpsign"}).Errorf("%v", err)
		}
	}
	return err
}

// fileError is an error about one file, for the annotation.
type fileError struct {
	file string
	err  error
}

func (e *fileError) Error() string { return e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// action does the work of runAction and returns its error.
func action(ctx context.Context, a *githubactions.Action, e *env) error {
	// Outside GitHub Actions, "::add-mask::" masks nothing: it would print
	// the key in clear to another CI's log. Check first, print nothing
	// of the inputs.
	if e.getenv("GITHUB_ACTIONS") != "true" {
		return errors.New(`GITHUB_ACTIONS is not "true": rpsign action runs only as a step of a GitHub Actions job, and prints nothing of its inputs elsewhere; ` +
			"in another CI or a shell use rpsign sign BINARY --key-env VAR (and rpsign publish)")
	}
	// Mask the key before anything else is printed.
	keyStr := strings.TrimSpace(a.GetInput("key"))
	if keyStr != "" {
		a.AddMask(keyStr)
	}
	token := strings.TrimSpace(a.GetInput("token"))
	if token != "" {
		a.AddMask(token)
	}
	if e.getenv("GITHUB_OUTPUT") == "" {
		return errors.New("GITHUB_OUTPUT is not set: rpsign action runs as a step of a GitHub Actions job (use rpsign sign elsewhere)")
	}
	if keyStr == "" {
		return errors.New(`input "key" is empty: pass the target's signing key from a secret, e.g. key: ${{ secrets.RP_KEY_LINUX_AMD64 }} (is the secret defined for this repository or environment?)`)
	}
	key, err := region.ParseSecretKey(keyStr)
	if err != nil {
		return fmt.Errorf(`input "key": %w (it should be the 52-character z-base-32 key written by rpsign gen)`, err)
	}
	pub := key.Public().(ed25519.PublicKey)

	op, err := rolloutInput(a)
	if err != nil {
		return err
	}
	if op != "" && op != rolloutPublish {
		// Only the statement changes: no file is signed.
		return actionRolloutOnly(ctx, a, e, key, token, op)
	}

	files, err := expandGlobs(a.GetInput("files"))
	if err != nil {
		return err
	}
	version, err := actionVersion(a, e, files[0])
	if err != nil {
		return err
	}
	format, err := parseFormat(strings.TrimSpace(a.GetInput("format")))
	if err != nil {
		return fmt.Errorf(`input "format": %w`, err)
	}
	targetInput := strings.TrimSpace(a.GetInput("target"))
	runtimeKey, err := boolInput(a, "runtime-key")
	if err != nil {
		return err
	}
	packs, err := packsInput(a, token)
	if err != nil {
		return err
	}

	var signed []ghrelease.Signed
	var infos []ghrelease.PatchInfo
	for _, f := range files {
		t, err := binaryTarget(f, targetInput, `the "target" input`, format)
		if err != nil {
			return &fileError{f, err}
		}
		in, err := signBinary(f, key, version, t, format, `input "key"`, runtimeKey, "")
		if err != nil {
			return &fileError{f, fmt.Errorf("signing: %w", err)}
		}
		if _, err := region.VerifyFile(context.Background(), f, pub); err != nil {
			return &fileError{f, fmt.Errorf("verifying after signing: %w", err)}
		}
		pi := ghrelease.NewPatchInfo(t, in, pub)
		pi.File = f
		infos = append(infos, pi)
		signed = append(signed, ghrelease.Signed{Path: f, Name: assetName(f, t), Target: t, Info: in, PublicKey: pub})
		a.Infof("signed %s: %s version %s for public key %s, hash %s", f, t, in.Version, region.EncodePublicKey(pub), hex.EncodeToString(in.Hash[:8]))
	}

	releaseURL, tag := "", ""
	if token != "" {
		u, tg, err := actionPublish(ctx, a, e, token, signed, packs)
		if err != nil {
			return err
		}
		releaseURL, tag = u, tg
	}
	if op == rolloutPublish {
		c, life, err := rolloutChangeInput(a, op, infos[0].Version)
		if err != nil {
			return err
		}
		var targets []target.Target
		for _, s := range signed {
			if !slices.Contains(targets, s.Target) {
				targets = append(targets, s.Target)
			}
		}
		sts, err := actionRollout(ctx, a, e, key, token, tag, targets, c, life)
		if err != nil {
			return err
		}
		if err := setRolloutOutputs(a, e, sts); err != nil {
			return err
		}
	}

	js, err := json.Marshal(infos)
	if err != nil {
		return err
	}
	a.SetOutput("files", strings.Join(files, "\n"))
	a.SetOutput("signed", string(js))
	a.SetOutput("public-key", region.EncodePublicKey(pub))
	a.SetOutput("version", infos[0].Version)
	a.SetOutput("release-url", releaseURL)
	if e.getenv("GITHUB_STEP_SUMMARY") != "" {
		a.AddStepSummary(summary(infos, releaseURL))
	}
	return nil
}

// boolInput reads a boolean input: empty or "false" is false, "true" is
// true (YAML's spelling, as GitHub passes it).
func boolInput(a *githubactions.Action, name string) (bool, error) {
	switch v := strings.TrimSpace(a.GetInput(name)); strings.ToLower(v) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	default:
		return false, fmt.Errorf("input %q is %q; want true or false", name, v)
	}
}

// expandGlobs expands the files input: glob patterns separated by new lines
// (or spaces, when on one line). Each pattern must match at least one file.
func expandGlobs(input string) ([]string, error) {
	files, err := globInput("files", input)
	if err == nil && len(files) == 0 {
		return nil, errors.New(`input "files" is empty: give the built binaries, e.g. files: dist/app-*`)
	}
	return files, err
}

// globInput expands the input name, glob patterns as expandGlobs takes
// them; none for an empty input.
func globInput(name, input string) ([]string, error) {
	var pats []string
	for _, line := range strings.Split(input, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pats = append(pats, line)
	}
	if len(pats) == 1 && strings.ContainsAny(pats[0], " \t") {
		if _, err := os.Stat(pats[0]); err != nil {
			pats = strings.Fields(pats[0])
		}
	}
	var files []string
	for _, p := range pats {
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf(`input %q: pattern %q: %w`, name, p, err)
		}
		var regular []string
		for _, f := range m {
			if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
				regular = append(regular, f)
			}
		}
		if len(regular) == 0 {
			return nil, &fileError{p, fmt.Errorf(`input %q: %q matches no file (working directory is the workspace; did the build step run?)`, name, p)}
		}
		for _, f := range regular {
			if !slices.Contains(files, f) {
				files = append(files, f)
			}
		}
	}
	return files, nil
}

// actionVersion returns the version input, else the version of the tag that
// triggered the run, else the Go build info version of the first file.
func actionVersion(a *githubactions.Action, e *env, first string) (string, error) {
	if v := strings.TrimSpace(a.GetInput("version")); v != "" {
		pv, err := region.ParseVersion(v)
		if err != nil {
			return "", fmt.Errorf(`input "version": %w`, err)
		}
		return pv, nil
	}
	if tag, ok := strings.CutPrefix(e.getenv("GITHUB_REF"), "refs/tags/"); ok {
		pv, err := region.ParseVersion(tag)
		if err != nil {
			return "", fmt.Errorf(`no "version" input, and tag %q is not a version: %w`, tag, err)
		}
		return pv, nil
	}
	v, err := buildVersion(first)
	if err != nil {
		return "", &fileError{first, fmt.Errorf(`no "version" input and not run on a tag (GITHUB_REF=%q): %w`, e.getenv("GITHUB_REF"), err)}
	}
	return region.ParseVersion(v)
}

// assetName returns the release asset name of a binary of target t: its
// base name, with _os_arch added before the extension unless the name
// already names the target, so that the legs of a matrix do not collide.
func assetName(path string, t target.Target) string {
	base := filepath.Base(path)
	lower := strings.ToLower(base)
	if strings.Contains(lower, t.OS) && strings.Contains(lower, t.Arch) {
		return base
	}
	ext := filepath.Ext(base)
	if ext != ".exe" {
		ext = ""
	}
	return strings.TrimSuffix(base, ext) + "_" + t.OS + "_" + t.Arch + ext
}

// packsInput returns the packs the compress and delta-from inputs ask
// for (as rpsign publish --compress and --delta-from), or nil; they need
// the token input, which publishes.
func packsInput(a *githubactions.Action, token string) (*ghrelease.Packs, error) {
	compress, err := boolInput(a, "compress")
	if err != nil {
		return nil, err
	}
	bases, err := globInput("delta-from", a.GetInput("delta-from"))
	if err != nil {
		return nil, err
	}
	p := packsOf(compress, bases)
	if p != nil && token == "" {
		return nil, errors.New(`inputs "compress" and "delta-from" add files to the release: set "token" too`)
	}
	return p, nil
}

// actionPublish publishes the signed files to the release of the tag input
// or of the tag that triggered the run, and returns the release's URL and
// tag.
func actionPublish(ctx context.Context, a *githubactions.Action, e *env, token string, files []ghrelease.Signed, packs *ghrelease.Packs) (string, string, error) {
	tag := strings.TrimSpace(a.GetInput("tag"))
	if tag == "" {
		t, ok := strings.CutPrefix(e.getenv("GITHUB_REF"), "refs/tags/")
		if !ok {
			return "", "", fmt.Errorf(`input "token" is set but there is no release tag: set the "tag" input or run on a tag push (GITHUB_REF=%q)`, e.getenv("GITHUB_REF"))
		}
		tag = t
	}
	c, repo, err := actionClient(a, e, token)
	if err != nil {
		return "", "", err
	}
	log := slog.New(slog.NewTextHandler(e.stdout, nil))
	p := &ghrelease.Publisher{Client: c, Repo: repo, Log: log, Packs: packs}
	rel, err := p.Publish(ctx, tag, files)
	if err != nil {
		return "", "", err
	}
	return rel.GetHTMLURL(), tag, nil
}

// summary renders the step summary: a table of the signed files.
func summary(infos []ghrelease.PatchInfo, releaseURL string) string {
	var b strings.Builder
	b.WriteString("### rpsign: signed binaries\n\n")
	b.WriteString("| File | Target | Version | Size | Hash | Public key |\n")
	b.WriteString("| --- | --- | --- | ---: | --- | --- |\n")
	for _, pi := range infos {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %d | `%s…` | `%s` |\n",
			mdEscape(pi.File), pi.Target, pi.Version, pi.Size, pi.Hash[:16], pi.PublicKey)
	}
	if releaseURL != "" {
		fmt.Fprintf(&b, "\nPublished to %s\n", releaseURL)
	}
	return b.String()
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "`", "'", "\n", " ").Replace(s)
}
