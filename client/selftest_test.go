package client

import (
	"bytes"
	"strings"
	"testing"

	"github.com/org/rustpatcher-go/internal/regiontest"
)

func TestSelfTestMainUnsigned(t *testing.T) {
	// The test binary is an unsigned build: its self-test must fail.
	t.Parallel()
	k := regiontest.NewKey(t)
	var out bytes.Buffer
	if code := selfTestMain(k.Public, nil, &out); code != 1 {
		t.Errorf("self-test of an unsigned binary exited %d, want 1", code)
	}
	if !strings.Contains(out.String(), selfTestPrefix+"failed") || !strings.Contains(out.String(), "not signed") {
		t.Errorf("self-test said %q", out.String())
	}
	out.Reset()
	if code := selfTestMain(nil, ErrNoKey, &out); code != 1 || !strings.Contains(out.String(), "no public key") {
		t.Errorf("self-test without key: %d %q", code, out.String())
	}
}
