package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/org/rustpatcher-go/internal/keyfile"
	"github.com/org/rustpatcher-go/region"
)

// maxKeyFile bounds how much of a key file is read: a key is 52 characters.
const maxKeyFile = 1024

func runGen(e *env, args []string) error {
	flags := flag.NewFlagSet("gen", flag.ContinueOnError)
	pos, err := parse(flags, args, 1)
	if err != nil {
		return err
	}
	path := pos[0]
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	// A key's directory (keys/ on a fresh checkout) is made private, as
	// the key is.
	if dir := filepath.Dir(path); dir != "." {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fmt.Errorf("key file: creating its directory: %w", err)
			}
			fmt.Fprintf(e.stderr, "rpsign: created directory %s (mode 0700) for the key\n", dir)
		}
	}
	// No newline after the key: rustpatcher's loader decodes the file's
	// bytes as they are and would refuse one.
	err = keyfile.Create(path, []byte(region.EncodeSecretKey(key)))
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; refusing to overwrite a key (choose another path, or delete it yourself if you are sure)", path)
	}
	if err != nil {
		return fmt.Errorf("key file: %w", err)
	}
	p := region.EncodePublicKey(pub)
	fmt.Fprintf(e.stdout, `Owner signing key written to %s (mode 0600). Keep it secret: add "%s" to .gitignore.
Public key: %s

Link the public key into your app's build (one key per target):

	go build -ldflags "-X %s=%s" ...

or put it in your app's main:

	upd, err := client.Spawn(ctx, client.Config{
		PublicKey: %q,
		Mode:      client.Now(),
	})
`, path, path, p, linkedKeyFlag, p, p)
	return nil
}

// keyFlags adds the flags that name a signing key to fs.
type keyFlags struct {
	file, env string
}

// String names where the key comes from, for messages.
func (k *keyFlags) String() string {
	if k.env != "" {
		return "environment variable " + k.env
	}
	return "key file " + k.file
}

func (k *keyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.file, "key-file", "", "read the owner key (z-base-32 seed) from `PATH`")
	fs.StringVar(&k.env, "key-env", "", "read the owner key (z-base-32 seed) from environment variable `VAR`")
}

// load returns the signing key. It never makes one up: a missing or bad key
// is an error naming where it was looked for.
func (k *keyFlags) load(e *env) (ed25519.PrivateKey, error) {
	switch {
	case k.file != "" && k.env != "":
		return nil, fmt.Errorf("%w: give either --key-file or --key-env, not both", errUsage)
	case k.file != "":
		f, err := os.Open(k.file)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("key file %s does not exist (make one with: rpsign gen %s)", k.file, k.file)
		}
		if err != nil {
			return nil, fmt.Errorf("reading key file: %w", err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, fmt.Errorf("reading key file: %w", err)
		}
		if st.IsDir() {
			return nil, fmt.Errorf("key file %s is a directory", k.file)
		}
		if keyfile.Exposed(st.Mode()) {
			fmt.Fprintf(e.stderr, "rpsign: warning: key file %s is readable by others (mode %04o): make it private with chmod 600 %s\n", k.file, st.Mode().Perm(), k.file)
		}
		b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
		if err != nil {
			return nil, fmt.Errorf("reading key file %s: %w", k.file, err)
		}
		if len(b) > maxKeyFile {
			return nil, fmt.Errorf("key file %s is larger than %d bytes; it should hold one %d-character z-base-32 key", k.file, maxKeyFile, region.EncodedKeyLen)
		}
		key, err := region.ParseSecretKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", k.file, err)
		}
		return key, nil
	case k.env != "":
		s := e.getenv(k.env)
		if s == "" {
			return nil, fmt.Errorf("environment variable %s is empty or unset; it should hold the owner key written by rpsign gen", k.env)
		}
		key, err := region.ParseSecretKey(s)
		if err != nil {
			return nil, fmt.Errorf("key in environment variable %s: %w", k.env, err)
		}
		return key, nil
	}
	return nil, fmt.Errorf("%w: a key is needed: --key-file PATH or --key-env VAR", errUsage)
}

func runPub(e *env, args []string) error {
	flags := flag.NewFlagSet("pub", flag.ContinueOnError)
	var kf keyFlags
	kf.register(flags)
	if _, err := parse(flags, args, 0); err != nil {
		return err
	}
	key, err := kf.load(e)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, region.EncodePublicKey(key.Public().(ed25519.PublicKey)))
	return nil
}
