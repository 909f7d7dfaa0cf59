package main

// The help of each command, printed by rpsign help COMMAND and by
// rpsign COMMAND --help after the usage line and before the flags.

const genHelp = `Makes a new owner (signing) key and writes it to PATH: the 52 z-base-32
characters of its seed, mode 0600, created whole and never over an existing
file. Prints the public key and how to link it into an app. Make one key per
target (linux/amd64, windows/arm64, ...), keep them offline or in CI secrets,
and never commit them.

Examples:
  rpsign gen keys/linux_amd64.key
  rpsign gen keys/windows_arm64.key
`

const pubHelp = `Prints the public key of an owner key, alone on one line: the key an app
embeds (linked in with -ldflags "-X ...client.linkedPublicKey=KEY") and rpseed
serves with --pub.

Examples:
  rpsign pub --key-file keys/linux_amd64.key
  RP_KEY_LINUX_AMD64=... rpsign pub --key-env RP_KEY_LINUX_AMD64
`

const signHelp = `Signs a release binary in place: writes the version, the target, the hash of
its content and an Ed25519 signature into its region. The binary must be a Go
program that imports github.com/org/rustpatcher-go/client and embeds the
public key of the signing key (checked unless --runtime-key). The target comes
from the executable's header; RP_KEY_<OS>_<ARCH> in --key-env must name the
same target. A binary already signed as a higher version is refused unless
--force: apps never go back to a lower version.

Examples:
  rpsign sign dist/app --key-file keys/linux_amd64.key --version 1.2.3
  rpsign sign dist/app.exe --key-env RP_KEY_WINDOWS_AMD64 --version v1.2.3
  rpsign sign dist/app --key-file owner_key        # version from the binary's Go module tag
`

const verifyHelp = `Checks a binary against an owner's public key: exits 0 only if its content
hashes to the signed hash at the signed size and the signature verifies.

Examples:
  rpsign verify dist/app --pub $(rpsign pub --key-file keys/linux_amd64.key)
`

const inspectHelp = `Shows a binary's signed region without checking a key: format, version,
target, content length, hash, signature, file ID, and whether the content
still matches the hash.

Examples:
  rpsign inspect dist/app
  rpsign inspect dist/app --json | jq -r .version
`

const actionHelp = `The GitHub Action's entrypoint (action.yml runs it): reads the action's inputs
from INPUT_* variables, signs the files, publishes them when given a token,
and writes outputs and a step summary. It runs only inside GitHub Actions
(GITHUB_ACTIONS=true), where it masks the key before printing anything; in
another CI or a shell use rpsign sign and rpsign publish.

Example (a workflow step):
  - uses: org/rustpatcher-go@v1
    with:
      key: ${{ secrets.RP_KEY_LINUX_AMD64 }}
      files: dist/app_linux_amd64
`

const publishHelp = `Attaches signed binaries to a GitHub release (created if missing), each with
its piece hashes (<asset>.pieces) and its per-target manifest
rustpatcher-<os>-<arch>.json, which apps (client.SourceFromURL
"github:OWNER/REPO") and rpseed --github read. FILEs named *.rotation (key
rotations) and *.rollout (rollouts) are statements: they are attached too, and
every manifest names them.
Every binary must verify with its target's --pub key first, and every
statement with its own signature. The token comes from $GITHUB_TOKEN (or
--token-env VAR), never from a flag. On a terminal, uploads show their
progress on standard error.

With --out DIR, nothing is uploaded and no token is needed: the same files
are written into DIR, exactly as the release would hold them. Served over
HTTPS (S3, nginx, GitHub Pages), DIR is a source for apps:
client.SourceFromURL("https://HOST/PATH/"). See docs/RELEASING.md.

Examples:
  GITHUB_TOKEN=... rpsign publish dist/app_linux_amd64 dist/app_linux_arm64 \
      --repo org/app --tag v1.2.3 --pub linux/amd64=KEY1 --pub linux/arm64=KEY2
  rpsign publish --out mirror dist/app_linux_amd64 releases/linux-amd64-1.rotation --pub KEY
`
